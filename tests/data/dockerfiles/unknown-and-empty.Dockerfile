FROM busybox
FOO bar baz
RUN
ENV
