#!/bin/sh
# overlay_cache.bats: the caching contract of kiln's overlay. kiln is the only
# writer of the mounts it serves, so it lets the kernel cache entries,
# attributes, negative entries and symlink targets for a day; after each of
# the step's own changes every path it reads must show the new state all the
# same. Each check first reads the path (so the kernel caches it), then
# changes it, then reads it again; "next" repeats the reads in the following
# RUN step (same mount, new layer) and changes the files the previous step
# committed (copy-up of frozen data).
#   check.sh setup | same | next | kill [DIR]
set -u
fail=0
# want WHAT GOT EXPECTED
want() {
  if [ "$2" = "$3" ]; then echo "ok: $1"; else echo "STALE: $1: got '$2', want '$3'"; fail=1; fi
}
ino() { stat -c %i "$1"; }
d=/cc
# kill DIR: what a write, truncate or chown clears on a setuid/setgid file when
# the writer lacks CAP_FSETID in the initial user namespace, as every step in
# kiln's user namespace does (the same checks pass on ext4 under `unshare -Ur`)
kill_checks() {
  k=$1
  for f in append write trunc otrunc chown chgrp sgid sgidx; do echo data > $k/$f; chmod 6755 $k/$f; done
  chmod 2745 $k/sgid; chmod 2755 $k/sgidx
  stat -c %a $k/append $k/write $k/trunc $k/otrunc $k/chown $k/chgrp $k/sgid $k/sgidx > /dev/null
  echo more >> $k/append
  echo z | dd of=$k/write conv=notrunc 2> /dev/null
  truncate -s 2 $k/trunc
  echo new > $k/otrunc
  chown 0 $k/chown
  chgrp 0 $k/chgrp
  echo more >> $k/sgid
  echo more >> $k/sgidx
  want "kill: append" "$(stat -c %a $k/append)" "755"
  want "kill: write" "$(stat -c %a $k/write):$(head -c1 $k/write)" "755:z"
  want "kill: truncate" "$(stat -c %a:%s $k/trunc)" "755:2"
  want "kill: O_TRUNC" "$(stat -c %a $k/otrunc):$(cat $k/otrunc)" "755:new"
  want "kill: chown" "$(stat -c %a $k/chown)" "755"
  want "kill: chgrp" "$(stat -c %a $k/chgrp)" "755"
  want "kill: setgid without group execute stays" "$(stat -c %a $k/sgid)" "2745"
  want "kill: setgid with group execute" "$(stat -c %a $k/sgidx)" "755"
  echo more >> $k/append
  want "kill: a second write" "$(stat -c %a:%s $k/append)" "755:15"
  # file capabilities go too (tests/integration/sandbox/xattr.c, when the
  # test put it in the image)
  command -v xattr > /dev/null || return 0
  for f in capw capt capo capr; do echo data > $k/$f; xattr setcap $k/$f; xattr getcap $k/$f > /dev/null; done
  echo more >> $k/capw
  # written first (with KILLPRIV_V2 the kernel then marks the inode as having
  # nothing to clear, S_NOSEC), given capabilities after, written again
  echo data > $k/capl; echo more >> $k/capl; xattr setcap $k/capl; echo again >> $k/capl
  want "kill: a write after setcap drops them" "$(xattr getcap $k/capl)" "xattr: get: ENODATA"
  truncate -s 1 $k/capt
  chown 0:0 $k/capo
  cat $k/capr > /dev/null
  want "kill: write drops capabilities" "$(xattr getcap $k/capw)" "xattr: get: ENODATA"
  want "kill: truncate drops capabilities" "$(xattr getcap $k/capt)" "xattr: get: ENODATA"
  want "kill: chown drops capabilities" "$(xattr getcap $k/capo)" "xattr: get: ENODATA"
  want "kill: a read keeps them" "$(xattr getcap $k/capr | cut -c1-4)" "0100"
}
case "$1" in
kill)
  kill_checks "${2:-/cc}"
  ;;
setup)
  mkdir $d $d/dir $d/rmdir
  echo old > $d/w; echo old > $d/trunc; echo src > $d/rsrc; echo dst > $d/rdst; echo gone > $d/u
  echo m > $d/mode; echo o > $d/own; echo s > $d/suid; chmod 4755 $d/suid
  echo l > $d/lnk; ln -s w $d/sl; echo x > $d/dir/a
  echo frozen > $d/fw; echo frozen > $d/fm; echo frozen > $d/fo
  ;;
same)
  # write: content and size through the cached attributes and pages
  want "write before" "$(cat $d/w):$(stat -c %s $d/w)" "old:4"
  echo newer > $d/w
  want "write" "$(cat $d/w):$(stat -c %s $d/w)" "newer:6"
  echo more >> $d/w
  want "append" "$(tail -n1 $d/w):$(stat -c %s $d/w)" "more:11"
  : > $d/trunc
  want "truncate (O_TRUNC)" "$(stat -c %s $d/trunc):$(cat $d/trunc)" "0:"
  # create where a negative entry is cached
  [ -e $d/neg ] && want "negative before" present absent
  echo born > $d/neg
  want "create over a negative entry" "$(cat $d/neg)" "born"
  # rename over an existing, cached name
  src_ino=$(ino $d/rsrc); cat $d/rdst > /dev/null
  mv $d/rsrc $d/rdst
  want "rename: target" "$(cat $d/rdst):$(ino $d/rdst)" "src:$src_ino"
  want "rename: source gone" "$(ls $d | grep -c '^rsrc$'):$([ -e $d/rsrc ] && echo present || echo absent)" "0:absent"
  mv $d/rdst $d/dir/moved
  want "rename into a directory" "$(cat $d/dir/moved):$(ls $d/dir | tr '\n' ' ')" "src:a moved "
  # unlink of a cached name
  cat $d/u > /dev/null
  rm $d/u
  want "unlink" "$([ -e $d/u ] && echo present || echo absent):$(ls $d | grep -c '^u$')" "absent:0"
  echo again > $d/u
  want "create after unlink" "$(cat $d/u)" "again"
  nl=$(stat -c %h $d)
  rmdir $d/rmdir
  want "rmdir: gone, parent's link count" "$([ -e $d/rmdir ] && echo present || echo absent):$(stat -c %h $d)" "absent:$((nl - 1))"
  mkdir $d/newdir
  want "mkdir: parent's link count" "$(stat -c %h $d)" "$nl"
  # chmod
  want "chmod before" "$(stat -c %a $d/mode)" "644"
  chmod 751 $d/mode
  want "chmod" "$(stat -c %a $d/mode)" "751"
  chmod 700 $d/dir
  want "chmod of a directory" "$(stat -c %a $d/dir):$(cat $d/dir/a)" "700:x"
  # chown (and what it clears)
  stat -c %u:%g $d/own > /dev/null
  chown 123:456 $d/own
  want "chown" "$(stat -c %u:%g $d/own)" "123:456"
  want "setuid before chown" "$(stat -c %a $d/suid)" "4755"
  chown 7:8 $d/suid
  want "chown clears setuid" "$(stat -c %a:%u:%g $d/suid)" "755:7:8"
  # link: the new name, and the link count of the old one
  want "link before" "$(stat -c %h $d/lnk)" "1"
  ln $d/lnk $d/lnk2
  want "link" "$(stat -c %h $d/lnk):$(stat -c %h $d/lnk2):$(cat $d/lnk2):$(ino $d/lnk2)" "2:2:l:$(ino $d/lnk)"
  echo through > $d/lnk2
  want "write through a link" "$(cat $d/lnk)" "through"
  rm $d/lnk2
  want "unlink of a link" "$(stat -c %h $d/lnk)" "1"
  ln $d/lnk $d/lnk2
  # symlink: new, replaced, and what it points to
  want "symlink before" "$(readlink $d/sl):$(cat $d/sl)" "w:$(cat $d/w)"
  ln -s newer-target $d/sl2
  want "symlink" "$(readlink $d/sl2)" "newer-target"
  ln -sfn trunc $d/sl
  want "symlink replaced" "$(readlink $d/sl):$(cat $d/sl)" "trunc:"
  mkdir $d/kill && kill_checks $d/kill
  ;;
next)
  want "next: write" "$(cat $d/w):$(stat -c %s $d/w)" "newer
more:11"
  want "next: truncate" "$(stat -c %s $d/trunc)" "0"
  want "next: created" "$(cat $d/neg)" "born"
  want "next: rename" "$(cat $d/dir/moved):$([ -e $d/rsrc ] && echo p || echo a):$([ -e $d/rdst ] && echo p || echo a)" "src:a:a"
  want "next: unlink + create" "$(cat $d/u)" "again"
  want "next: rmdir, mkdir" "$([ -e $d/rmdir ] && echo p || echo a):$([ -d $d/newdir ] && echo p || echo a)" "a:p"
  want "next: chmod" "$(stat -c %a $d/mode):$(stat -c %a $d/dir)" "751:700"
  want "next: chown" "$(stat -c %u:%g $d/own):$(stat -c %a:%u:%g $d/suid)" "123:456:755:7:8"
  # (names of a committed hardlink are separate inodes reading one file,
  # docs/design/overlay.md "Not done yet": content only)
  want "next: link" "$(cat $d/lnk2)" "$(cat $d/lnk)"
  want "next: symlinks" "$(readlink $d/sl):$(readlink $d/sl2)" "trunc:newer-target"
  want "next: kill" "$(cd $d/kill && stat -c %a append write trunc otrunc chown chgrp sgid sgidx | tr '\n' ' ')" \
    "755 755 755 755 755 755 2745 755 "
  # the previous step's files are frozen in its layer: changes copy them up
  cat $d/fw $d/fm $d/fo > /dev/null
  echo thawed > $d/fw
  want "next: write of a committed file" "$(cat $d/fw):$(stat -c %s $d/fw)" "thawed:7"
  chmod 600 $d/fm
  want "next: chmod of a committed file" "$(stat -c %a $d/fm):$(cat $d/fm)" "600:frozen"
  chown 9:9 $d/fo
  want "next: chown of a committed file" "$(stat -c %u:%g $d/fo):$(cat $d/fo)" "9:9:frozen"
  mv $d/fw $d/fo
  want "next: rename over a committed file" "$(cat $d/fo):$([ -e $d/fw ] && echo p || echo a)" "thawed:a"
  rm $d/lnk
  want "next: unlink of a committed link" "$([ -e $d/lnk ] && echo p || echo a):$(cat $d/lnk2)" "a:through"
  ;;
esac
[ "$fail" = 0 ] || { echo "check.sh $1: the step read stale state"; exit 1; }
echo "check.sh $1: all new"
