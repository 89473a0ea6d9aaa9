# python:3.11-slim's stand-in: Debian bookworm's Python 3.11 in a venv on PATH (python, pip).
ARG ROOTFS=gh-assets-rootfs/python:bookworm
FROM ${ROOTFS}
RUN python3 -m venv /usr/local/python \
    && rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/* /root/.cache
ENV PATH=/usr/local/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8
CMD ["python3"]
