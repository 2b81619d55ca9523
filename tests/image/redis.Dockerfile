# Redis for the compose test (tests/test_image.py): Debian's redis-server on the portal's
# own base, in place of Docker Hub's redis:7, which not every test machine can pull. It
# takes compose.yaml's command and healthcheck unchanged.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# As in redis:7: without a configuration file Redis listens on every interface and, like
# that image, leaves protected mode off, so the portal's container can reach it; the data
# (the append-only file) goes to /data, compose.yaml's volume.
RUN printf '#!/bin/sh\nexec /usr/bin/redis-server "$@" --protected-mode no\n' \
      > /usr/local/bin/redis-server \
    && chmod 755 /usr/local/bin/redis-server && mkdir /data
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /data
CMD ["redis-server"]
