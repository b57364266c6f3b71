# escape=`
FROM busybox
RUN echo bom `
  ok
