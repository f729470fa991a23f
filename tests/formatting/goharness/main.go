// Renders text/template cases with Go itself, for the differential test in test_go_differential.py.
// Input on stdin: [{"tmpl": "...", "data": <json>, "missingkey": "default"|"error"}]; output on stdout:
// [{"out": "...", "err": "..."}].  With "list": true, data is a list of rows rendered the way Docker's
// CLI renders `ps`-like output (its formatter.Context): a "table" prefix gives tab-aligned columns
// under a header row rendered from "headers" with the header functions.  Numbers decode as int when integral text, else float64, matching
// how the Python side models JSON data.
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"text/tabwriter"
	"text/template"
)

type tcase struct {
	Tmpl       string            `json:"tmpl"`
	Data       json.RawMessage   `json:"data"`
	MissingKey string            `json:"missingkey"`
	List       bool              `json:"list"`
	Marshal    string            `json:"marshal"`
	Headers    map[string]string `json:"headers"`
}

type result struct {
	Out string `json:"out"`
	Err string `json:"err"`
}

// The functions Docker's CLI adds to every template (docker/cli templates package), written from
// their documented behaviour.
var funcs = template.FuncMap{
	"json": func(v interface{}) string {
		buf := &bytes.Buffer{}
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(v)
		return strings.TrimSpace(buf.String())
	},
	"split": strings.Split,
	"join":  strings.Join,
	"title": strings.Title,
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"pad": func(s string, prefix, suffix int) string {
		if s == "" {
			return s
		}
		return strings.Repeat(" ", prefix) + s + strings.Repeat(" ", suffix)
	},
	"truncate": func(s string, n int) string {
		if len(s) < n {
			return s
		}
		return s[:n]
	},
}

// Docker renders a table header with the row template but these functions returning their input.
var headerFuncs = template.FuncMap{
	"json":     func(v string) string { return v },
	"split":    func(v string, _ string) string { return v },
	"join":     func(v string, _ string) string { return v },
	"title":    func(v string) string { return v },
	"lower":    func(v string) string { return v },
	"upper":    func(v string) string { return v },
	"truncate": func(v string, _ int) string { return v },
}

// rowContext stands for Docker's formatter contexts, which marshal themselves with json.Marshal over a
// map of their fields (formatter.MarshalJSON): `{{json .}}` of a row escapes <, > and & and sorts keys.
type rowContext map[string]interface{}

func (r rowContext) MarshalJSON() ([]byte, error) {
	return json.Marshal(map[string]interface{}(r))
}

func runList(c tcase, rows []interface{}) result {
	format := c.Tmpl
	isTable := strings.HasPrefix(format, "table")
	switch {
	case isTable:
		format = format[len("table"):]
	case format == "json":
		format = "{{json .}}"
	}
	format = strings.Trim(format, " ")
	format = strings.NewReplacer(`\t`, "\t", `\n`, "\n").Replace(format)
	t, err := template.New("").Funcs(funcs).Parse(format)
	if err != nil {
		return result{Err: err.Error()}
	}
	body := &bytes.Buffer{}
	for _, row := range rows {
		if m, ok := row.(map[string]interface{}); ok {
			row = rowContext(m)
		}
		if err := t.Execute(body, row); err != nil {
			return result{Err: err.Error()}
		}
		body.WriteString("\n")
	}
	if !isTable {
		return result{Out: body.String()}
	}
	var out bytes.Buffer
	w := tabwriter.NewWriter(&out, 10, 1, 3, ' ', 0)
	header := &bytes.Buffer{}
	_ = t.Funcs(headerFuncs).Execute(header, c.Headers)
	_, _ = header.WriteTo(w)
	_, _ = w.Write([]byte("\n"))
	_, _ = body.WriteTo(w)
	_ = w.Flush()
	return result{Out: out.String()}
}

func convert(v interface{}) interface{} {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil && !strings.ContainsAny(string(x), ".eE") {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case map[string]interface{}:
		for k, e := range x {
			x[k] = convert(e)
		}
	case []interface{}:
		for i, e := range x {
			x[i] = convert(e)
		}
	}
	return v
}

// marshal writes data as Docker's json template function ("encoder"), as json.Marshal ("marshal", a
// row context's own JSON) or as `docker inspect` prints the daemon's JSON ("indent").
func marshal(mode string, data interface{}) result {
	if mode == "marshal" {
		b, err := json.Marshal(data)
		if err != nil {
			return result{Err: err.Error()}
		}
		return result{Out: string(b)}
	}
	buf := &bytes.Buffer{}
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if mode == "indent" {
		enc.SetIndent("", "    ")
	}
	if err := enc.Encode(data); err != nil {
		return result{Err: err.Error()}
	}
	return result{Out: strings.TrimSuffix(buf.String(), "\n")}
}

func run(c tcase) (res result) {
	defer func() {
		if r := recover(); r != nil {
			res.Err = "panic"
		}
	}()
	var data interface{}
	dec := json.NewDecoder(bytes.NewReader(c.Data))
	dec.UseNumber()
	if err := dec.Decode(&data); err != nil {
		return result{Err: "bad data: " + err.Error()}
	}
	data = convert(data)
	if c.Marshal != "" {
		return marshal(c.Marshal, data)
	}
	if c.List {
		rows, _ := data.([]interface{})
		return runList(c, rows)
	}
	t, err := template.New("").Funcs(funcs).Parse(c.Tmpl)
	if err != nil {
		return result{Err: err.Error()}
	}
	if c.MissingKey != "" {
		t = t.Option("missingkey=" + c.MissingKey)
	}
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		return result{Out: out.String(), Err: err.Error()}
	}
	return result{Out: out.String()}
}

func main() {
	var cases []tcase
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	results := make([]result, len(cases))
	for i, c := range cases {
		results[i] = run(c)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(results)
}
