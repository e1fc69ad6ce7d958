#ifndef APFLAB_TYPES_H
#define APFLAB_TYPES_H

typedef unsigned long u64;
typedef long s64;
typedef unsigned int u32;
typedef unsigned char u8;

#define NULL ((void *)0)

#endif
