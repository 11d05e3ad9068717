# ReplyDesk image: one image for both process kinds.
#   API replica:  replydesk serve --host 0.0.0.0   (the default command; set REPLYDESK_WORKERS_ENABLED=false when
#                 `replydesk worker` containers run the background loops)
#   worker:       replydesk worker                 (background loops only, no HTTP; stops on SIGTERM)
# Every setting comes from REPLYDESK_* variables (README "Configuration"); compose.yaml runs PostgreSQL, N API
# replicas and M workers from this image.
#
#   docker build -t replydesk:0.1.0 .
#
# Offline at run time: the embedding models come inside the Python packages (HF_HUB_OFFLINE=1), the ONNX export,
# the intent classifier and the help-article index are built here, at image build.
FROM python:3.11.11-slim-bookworm

# torch's CPU build of the version pyproject.toml pins. PyPI's Linux x86_64 wheel of torch pulls ~2.5 GB of CUDA
# libraries a CPU-only service never loads; PyTorch's own index serves the CPU build of the same version
# (`2.13.0+cpu`, which satisfies `torch==2.13.0`). Pass --build-arg TORCH_INDEX_URL=https://pypi.org/simple to
# take PyPI's wheel instead.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    REPLYDESK_DATA_DIR=/data \
    REPLYDESK_CACHE_DIR=/opt/replydesk/cache \
    REPLYDESK_PROMPTS_DIR=/app/prompts \
    REPLYDESK_KB_ARTICLES_DIR=/app/kb_index/articles

# 1. torch first, alone: the project's `pip install .` then finds `torch==2.13.0` satisfied and does not
#    resolve it again (a plain `pip install .` would take PyPI's CUDA build).
RUN pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"

# 2. The project (not editable). Its dependencies come from PyPI with the lower bounds of pyproject.toml.
WORKDIR /app
COPY pyproject.toml README.md alembic.ini ./
COPY service ./service
COPY kb_index ./kb_index
COPY eval ./eval
COPY bench ./bench
COPY prompts ./prompts
RUN pip install . \
    && python -c "import torch; assert torch.__version__.split('+')[0] == '${TORCH_VERSION}', torch.__version__"

# 3. A non-root user owns what the service writes: the data directory (the shared volume in compose) and the
#    per-container model caches. The source under /app stays root-owned and read-only for it.
RUN groupadd --system --gid 10001 replydesk \
    && useradd --system --uid 10001 --gid replydesk --home-dir /home/replydesk --create-home replydesk \
    && mkdir -p /data /opt/replydesk/cache \
    && chown -R replydesk:replydesk /data /opt/replydesk
USER replydesk

# 4. Build the help-article index (published under /data/index; a new named volume mounted on /data starts with
#    it) and warm the models once (ONNX export, intent classifier) so containers start without that work. The
#    SQLite file those commands open on the way is removed: deployments use REPLYDESK_DATABASE_URL.
RUN replydesk kb build \
    && replydesk triage "where is my order A12345?" > /dev/null \
    && rm -f /data/replydesk.db /data/replydesk.db-wal /data/replydesk.db-shm

EXPOSE 8000
# /health answers 200 while the process serves (its body says which components are degraded). No curl in the
# slim image: the check is Python's own urllib.
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
CMD ["replydesk", "serve", "--host", "0.0.0.0", "--port", "8000"]
