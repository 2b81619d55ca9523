# Production image: `connect-portal serve` (uvicorn workers; Redis and a core API required).
# Build and check it with `./dev image` and tests/test_image.py (docs/deployment.md).
#
# Base: Debian bookworm-slim with Debian's own python3 (3.11), not python:3.12-slim, so that
# every package in the image, Python included, gets Debian's security updates through apt
# (rebuild to pick them up). requirements.lock is made for Python 3.11 (`./dev lock`).

# -- build: a virtual environment in /opt/portal, from the hash-pinned lock file ------------
FROM debian:bookworm-slim AS build
# python3-venv brings ensurepip (the pip that installs the lock). Every dependency has a
# binary wheel for Linux x86_64/aarch64, so no compiler is needed, here or later.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# Networks whose proxy inspects TLS (some CI and company networks) have an authority of
# their own: EXTRA_CA_CERTS (PEM text; `./dev image` passes the machine's own additions,
# /usr/local/share/ca-certificates) is trusted by pip in this stage only, never in the image.
ARG EXTRA_CA_CERTS=""
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" >> /etc/ssl/certs/ca-certificates.crt; fi
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/portal
# The lock first, on its own layer: a change to the portal's code reuses the installed
# dependencies. --require-hashes: exactly the files `./dev lock` pinned, nothing resolved.
COPY requirements.lock /tmp/requirements.lock
RUN /opt/portal/bin/pip install --no-cache-dir --require-hashes -r /tmp/requirements.lock
WORKDIR /src
COPY pyproject.toml README.md ./
COPY portal ./portal
COPY templates ./templates
COPY static ./static
# The portal itself, built into a wheel and installed without resolving anything again;
# then pip and setuptools leave the environment: nothing installs packages at run time.
RUN /opt/portal/bin/pip install --no-cache-dir --no-deps . \
    && /opt/portal/bin/pip uninstall -y -q setuptools pip \
    && find /opt/portal -name '*.whl' -delete

# -- run: the base system, python3 and the environment; no pip, no build tools ---------------
FROM debian:bookworm-slim
# ca-certificates: the system's authorities, which TLS to SMTP and rediss:// relies on.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
       python3 ca-certificates \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && groupadd --gid 10001 portal \
    && useradd --uid 10001 --gid portal --no-create-home --shell /usr/sbin/nologin portal
COPY --from=build /opt/portal /opt/portal
# PATH spelled out: an imported base image (`./dev image` without Docker Hub) sets none.
# PORTAL_HOST 0.0.0.0 (the default, said here): the portal must answer from outside.
ENV PATH=/opt/portal/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORTAL_HOST=0.0.0.0 PORTAL_PORT=8000
USER portal
WORKDIR /tmp
EXPOSE 8000
# Docker's own health status follows readiness (Redis answering), with the standard
# library only: no curl in the image.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PORTAL_PORT', '8000'), timeout=2)" || exit 1
# `docker stop` sends SIGTERM: uvicorn stops taking connections, finishes requests in
# flight and the outbox worker stops, leaving what it had not delivered queued in Redis.
STOPSIGNAL SIGTERM
CMD ["connect-portal", "serve"]
