src/test_main.c
