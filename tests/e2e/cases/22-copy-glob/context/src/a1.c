src/a1.c
