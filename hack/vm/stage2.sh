# Second stage of the test VM's PID 1 (busybox sh, on the host's read-only tree after switch_root).
# A pure cgroup v2 host: cgroup2 alone on /sys/fs/cgroup (the kernel runs with cgroup_no_v1=all),
# every controller enabled for the root's children.  Runs /run/vm/command (written by the launcher),
# its output to /run/vm/log, its exit status to /run/vm/rc, then powers off.  As PID 1, this shell
# also reaps orphans (containers whose `create` has exited) while it waits for the command.
bb=/bin/busybox
$bb mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup
for c in $($bb cat /sys/fs/cgroup/cgroup.controllers); do echo "+$c" > /sys/fs/cgroup/cgroup.subtree_control; done
$bb mkdir -p /dev/pts /dev/shm /dev/mqueue
$bb mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts /dev/pts
$bb ln -sf pts/ptmx /dev/ptmx
# What udev would add: crun reads `update -r -` from /dev/stdin.
$bb ln -sf /proc/self/fd /dev/fd
$bb ln -sf /proc/self/fd/0 /dev/stdin
$bb ln -sf /proc/self/fd/1 /dev/stdout
$bb ln -sf /proc/self/fd/2 /dev/stderr
$bb mount -t tmpfs -o mode=1777 shm /dev/shm
$bb mount -t mqueue mqueue /dev/mqueue
$bb hostname dockyard-vm
# The project (and its venv) when it sits below one of the guest's private tmpfs mounts.
project=$($bb cat /run/vm/project 2>/dev/null)
if [ -n "$project" ] && [ ! -d "$project" ]; then
  $bb mkdir -p "$project"
  $bb mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,ro,cache=loose project "$project"
fi
$bb ip link set lo up 2>/dev/null
export HOME=/tmp PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin PYTHONDONTWRITEBYTECODE=1
cd /
/bin/sh /run/vm/command > /run/vm/log 2>&1 < /dev/null
echo $? > /run/vm/rc
$bb sync
$bb poweroff -f
