# The sink: the runtime stage of examples/docker-compose/Dockerfile.sink (its
# user, volume, entrypoint) plus the CLI built on this machine and the
# libraries it links. Built by images/build.sh, which passes that stage as
# BASE.
ARG BASE
FROM ${BASE}
COPY root/ /
