# redis:7.4's stand-in: Debian bookworm's redis-server (7.0), reachable from other containers as
# the official image is (protected mode off when no config file is given), data in /data.
ARG ROOTFS=gh-assets-rootfs/redis:bookworm
FROM ${ROOTFS}
COPY redis-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN mkdir -p /data
WORKDIR /data
VOLUME /data
EXPOSE 6379
ENTRYPOINT ["/bin/sh", "/usr/local/bin/docker-entrypoint.sh"]
CMD ["redis-server"]
