FROM busybox
COPY f /a
COPY --chown=1:1 dir /d/
COPY f /new/dir/
