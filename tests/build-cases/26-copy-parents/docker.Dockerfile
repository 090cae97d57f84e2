FROM busybox
COPY a/x.txt /dst/a/
COPY b/c/y.txt /dst/b/c/
