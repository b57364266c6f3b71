FROM busybox
ONBUILD RUN echo triggered
ONBUILD COPY --chown=1:1 . /app
ONBUILD ENV A=b C=d
onbuild run ["echo", "json trigger"]
ONBUILD ADD <<EOF /onbuild.txt
heredoc in onbuild
EOF
