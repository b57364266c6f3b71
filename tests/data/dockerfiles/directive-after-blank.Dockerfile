
# escape=`
FROM busybox
RUN echo backslash still continues \
  here
