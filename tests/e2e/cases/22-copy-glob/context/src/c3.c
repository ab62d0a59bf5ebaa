src/c3.c
