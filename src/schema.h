/* The schema steps compiled in from schema/NNN-*.sql (see scripts/embed-schema). */
#ifndef QRPOOL_SCHEMA_H
#define QRPOOL_SCHEMA_H

struct schema_step {
	int version;
	const char *name;
	const char *sql;
};

extern const struct schema_step schema_steps[];
extern const int schema_step_count;

#endif
