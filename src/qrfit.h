/* Whether a link pool's URLs fit a QR code: url_prefix plus a request id, in
 * byte mode, at the pool's ec_level and within its min_version. Checked by
 * render before it draws a code and by plan before it mints one, so a prefix
 * too long is a config error at once, not codes that stay planned. */
#ifndef QRPOOL_QRFIT_H
#define QRPOOL_QRFIT_H

#include <qrencode.h>
#include <stddef.h>

#include "config.h"

/* libqrencode's level for 'L', 'M', 'Q' or 'H' (M for anything else). */
QRecLevel qrfit_level(char level);

/* The QR version that `length` bytes need at `level` ('L', 'M', 'Q', 'H'),
 * never below min_version; 0 when not even version 40 holds them. */
int qrfit_version_for(size_t length, char level, int min_version);

/* Checks every link pool: url_prefix plus a request id must fit the pool's
 * level (and min_version, if set). Returns 0, or EXIT_CONFIG after logging
 * "file:line: ..." with what would fit. */
int qrfit_check_config(const struct config *config);

#endif
