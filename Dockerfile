# Scaler image, run beside the challenge simulator (simulator:v1.3.3) in one pod; see
# docs/running-with-challenge-simulator.md. Like the challenge's sample image it installs netcat
# and curl (run.sh probes ports with `nc -z`; curl is handy for `kubectl exec ... curl :9000`),
# works in /app and starts run.sh. The gRPC stubs are committed under scaler/wire/, so nothing
# is generated here.
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends netcat-openbsd curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so a source change does not reinstall them. They go into the image's own
# python3 (no .venv in the image: ./scaler falls back to python3).
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
RUN chmod +x run.sh scaler

EXPOSE 9001

CMD ["./run.sh"]
