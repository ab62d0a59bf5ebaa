src/yy.h
