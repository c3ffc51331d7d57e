#include "exitcode.h"

static int exitcode_rank(int code)
{
	switch (code) {
	case EXIT_DONE: return 0;
	case EXIT_TEMPFAIL: return 1;
	case EXIT_DATA: return 2;
	case EXIT_UPSTREAM: return 3;
	case EXIT_IO: return 4;
	case EXIT_INTERNAL: return 5;
	case EXIT_CONFIG: return 6;
	case EXIT_USAGE: return 7;
	default: return 5;
	}
}

int exitcode_worst(int a, int b)
{
	return exitcode_rank(a) >= exitcode_rank(b) ? a : b;
}
