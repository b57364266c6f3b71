# syntax=docker/dockerfile:1.7
#ESCAPE = \
# this comment ends the directives
# escape=`
FROM busybox
RUN echo no-backtick-escape-here \
  done
