/*
 * fasterpg --check URL: one GET, for container health checks (the image
 * holds no curl). The answer's status decides; the body is not read.
 */
#pragma once

#include <stdbool.h>
#include <stdio.h>

/* True on a 2xx answer within 5 s; else false, and why on errout. */
bool fpg_probe(const char *url, FILE *errout);
