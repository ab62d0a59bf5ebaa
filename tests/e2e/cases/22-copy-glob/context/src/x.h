src/x.h
