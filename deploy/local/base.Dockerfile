# haflow-local/base: Debian 12 with Python 3.11 in a virtualenv on PATH, the base of every
# image deploy/local/build-images.sh makes (the haflow image and one image per server). It
# plays the part of python:3.11-slim where no registry answers: `pip` and `python` are the
# virtualenv's, so deploy/Dockerfile runs unchanged on it.
ARG DEBIAN=debian:bookworm-slim
FROM ${DEBIAN}

ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# The build host's own certificate authorities (its /usr/local/share/ca-certificates, copied
# here by build-images.sh; often none): behind a TLS-inspecting proxy, apt and pip need them.
COPY extra-ca/ /usr/local/share/ca-certificates/
# Packages' maintainer scripts must not start services inside a build (Debian's own images
# ship the same file; a debootstrap root file system does not).
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \
 && apt-get update -q \
 && apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && update-ca-certificates >/dev/null \
 && python3 -m venv /opt/python
# pip and requests carry their own CA list; point them at the system's, which has the above.
ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
