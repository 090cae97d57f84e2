FROM busybox
COPY dir/a.txt /dst/
COPY dir/sub /dst/sub/
