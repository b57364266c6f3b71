# leading comment
   # indented comment
FROM busybox
# between instructions

RUN echo a # not a comment, part of the command
  # indented comment between instructions
RUN echo b
