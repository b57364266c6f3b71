FROM busybox
ARG TAG=latest
ENV PATH=${PATH}:/opt/bin HOME=/root
ENV DEF=${UNSET:-fallback} ALT=${TAG:+set} TRIM=${TAG%est}
COPY ["src dir/with space", "/dest dir/"]
WORKDIR ${HOME}/work
RUN echo '$single' "$double" \$escaped
