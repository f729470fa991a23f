// Renders text/template cases with Go itself, for the differential test in test_go_differential.py.
// Input on stdin: [{"tmpl": "...", "data": <json>, "missingkey": "default"|"error"}]; output on stdout:
// [{"out": "...", "err": "..."}].  Numbers decode as int when integral text, else float64, matching
// how the Python side models JSON data.
package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type tcase struct {
	Tmpl       string          `json:"tmpl"`
	Data       json.RawMessage `json:"data"`
	MissingKey string          `json:"missingkey"`
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
