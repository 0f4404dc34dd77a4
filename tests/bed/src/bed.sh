# /lib/bed.sh: the sealroot test bed's shell library (busybox ash).
#
# Scenarios report to the host through machine-readable lines on a serial
# port of their own (/dev/ttyS1, captured by QEMU into a file), so kernel
# messages on the console can never split or corrupt them. Every line is
#
#   @@bed <kind> <name> <key>=<value>...
#
# where <name> matches [A-Za-z0-9._:/+-]+ and every free-form value is
# `b64:<base64>` (busybox `base64 -w 0`). Kinds:
#
#   @@bed start - release=<uname -r>
#   @@bed result <name> rc=<exit code> ms=<elapsed> cmd=b64:.. stdout=b64:.. stderr=b64:..
#   @@bed value <name> value=b64:..
#   @@bed done - rc=<scenario exit code>       (or setup_failed=<step name>)
#
# A human-readable copy of each line goes to the console.

BED_CHANNEL=${BED_CHANNEL:-/dev/ttyS1}

# Appends one protocol line. Opening and closing the tty per line makes the
# kernel drain the UART on close, so nothing is lost at `poweroff -f`.
bed__emit() {
	printf '@@bed %s\n' "$*" >>"$BED_CHANNEL"
}

bed__b64() {
	base64 -w 0
}

# Milliseconds since boot (10 ms resolution, from /proc/uptime).
bed__ms() {
	local up
	read -r up _ </proc/uptime
	echo $((${up%.*} * 1000 + 1${up#*.}0 - 1000))
}

bed__check_name() {
	case $1 in
	'' | *[!A-Za-z0-9._:/+-]*)
		echo "bed: invalid result name '$1' (allowed: A-Z a-z 0-9 . _ : / + -)" >&2
		return 2
		;;
	esac
}

# Shows a captured stream on the console, indented, at most 200 lines.
bed__show() {
	[ -s "$2" ] || return 0
	echo "    $1:"
	head -n 200 "$2" | sed 's/^/    | /'
	[ "$(wc -l <"$2")" -le 200 ] || echo "    | [... truncated on the console; the result line has all of it]"
}

# bed_run NAME COMMAND [ARGS...]
#   Runs COMMAND (a program or a shell function, in a subshell so `exit`
#   ends only the command) with stdin from /dev/null,
#   captures its stdout and stderr, reports one result line and returns the
#   command's exit code (so scenarios can branch on it).
bed_run() {
	local name=$1 out err t0 t1 rc
	shift
	bed__check_name "$name" || return 2
	[ $# -gt 0 ] || { echo "bed_run $name: no command" >&2; return 2; }
	out=$(mktemp /tmp/bed.out.XXXXXX)
	err=$(mktemp /tmp/bed.err.XXXXXX)
	t0=$(bed__ms)
	("$@") >"$out" 2>"$err" </dev/null
	rc=$?
	t1=$(bed__ms)
	bed__emit "result $name rc=$rc ms=$((t1 - t0)) cmd=b64:$(printf '%s' "$*" | bed__b64) stdout=b64:$(bed__b64 <"$out") stderr=b64:$(bed__b64 <"$err")"
	echo "[bed] result $name rc=$rc ($((t1 - t0)) ms): $*"
	bed__show stdout "$out"
	bed__show stderr "$err"
	rm -f "$out" "$err"
	return $rc
}

# bed_value NAME VALUE...
#   Reports a named value (the arguments joined by spaces).
bed_value() {
	local name=$1
	shift
	bed__check_name "$name" || return 2
	bed__emit "value $name value=b64:$(printf '%s' "$*" | bed__b64)"
	echo "[bed] value $name = $*"
}

# bed_log MESSAGE...: a line on the console for humans, no result.
bed_log() {
	echo "[bed] $*"
}
