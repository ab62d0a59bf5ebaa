src/b2.c
