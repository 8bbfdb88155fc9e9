#!/bin/sh
# Entry point of the workflow engine image: one image, four Cloud Run services.
#
# The function to serve is the first argument (Terraform sets it as the container's
# args) or WFE_FUNCTION. Cloud Run sets PORT. Run it from the directory that holds
# functions/ and shared/ (the image's WORKDIR, /app).
set -eu

function_name="${1:-${WFE_FUNCTION:-}}"
port="${PORT:-8080}"
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$(pwd)"

case "$function_name" in
create | execute-step | trigger-handler)
	# functions-framework under gunicorn with a uvicorn worker (the targets are
	# functions_framework.aio functions, so --asgi).
	target=$(printf '%s' "$function_name" | tr '-' '_')
	exec functions-framework --source "functions/$function_name/main.py" \
		--target "$target" --asgi --host 0.0.0.0 --port "$port"
	;;
status-stream)
	# The full ASGI app (WebSockets, GraphQL subscriptions, SSE) under uvicorn:
	# functions-framework cannot hold WebSockets.
	exec uvicorn --app-dir functions/status-stream main:app \
		--host 0.0.0.0 --port "$port" --proxy-headers --forwarded-allow-ips '*' \
		--timeout-graceful-shutdown 8 --ws-per-message-deflate false
	;;
*)
	echo "usage: entrypoint.sh create|execute-step|trigger-handler|status-stream (or WFE_FUNCTION)" >&2
	exit 64
	;;
esac
