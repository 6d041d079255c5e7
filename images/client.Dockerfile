# Workload traffic and the one-shot PKI step: curl and openssl on the local
# base. Built by images/build.sh.
ARG BASE
FROM ${BASE}
COPY root/ /
CMD ["curl", "--version"]
