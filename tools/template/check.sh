#!/usr/bin/env bash
# Checks a SAM template as `make lint` does: cfn-lint on the template, then this project's AWS
# CloudFormation Guard rules (websocket.guard) on the template as SAM expands it.
#
#   tools/template/check.sh template.yaml
#
# Prints one line per finding, `cfn-lint <rule id> <message>`, `cfn-guard <rule name>` or
# `sam-translator <message>`, and exits 1 when there is any (2 when a tool itself fails). Uses
# the pinned cfn-lint, SAM translator and cfn-guard that `make tools` installs in .tools/.
set -uo pipefail

template=${1:?usage: check.sh TEMPLATE}
here=$(cd "$(dirname "$0")" && pwd)
tools=$here/../../.tools
export PATH="$tools/venv/bin:$tools/cargo/bin:$PATH"
found=0

lint=$(cfn-lint --format parseable -- "$template" 2>&1)
if [ $? -ne 0 ]; then
	# file:line:column:line:column:RULE:message
	awk -F: 'NF >= 7 { message = $7; for (i = 8; i <= NF; i++) message = message ":" $i; print "cfn-lint " $6 " " message }' <<<"$lint"
	found=1
fi

# cfn-guard reads only files named .json, .yaml, .yml or .template.
expanded=$(mktemp --suffix=.json)
trap 'rm -f "$expanded"' EXIT
if ! error=$(python3 "$here/sam-expand.py" "$template" 2>&1 >"$expanded"); then
	echo "sam-translator $error"
	exit 1
fi

guard=$(cfn-guard validate --rules "$here/websocket.guard" --data "$expanded" \
	--show-summary all --output-format single-line-summary 2>&1)
case $? in
0)
	# A pass must say so: a data file cfn-guard skipped would also exit 0.
	if ! grep -q "Status = PASS" <<<"$guard"; then
		echo "cfn-guard evaluated nothing: $guard" >&2
		exit 2
	fi
	;;
19)
	sed -nE 's|^websocket\.guard/([A-Za-z0-9_]+)[[:space:]]+FAIL$|cfn-guard \1|p' <<<"$guard"
	found=1
	;;
*)
	echo "cfn-guard could not run: $guard" >&2
	exit 2
	;;
esac
exit $found
