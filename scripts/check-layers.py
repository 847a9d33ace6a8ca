#!/usr/bin/env python3
"""Fails when the modules of src/ include each other in a circle.

A module is x.c with its x.h; it depends on every project header it
includes. Calls go one way (a module only calls the ones below it; a
callback it was given is how a lower one reaches a higher one), so the
include graph must have no cycle. Prints the modules from the bottom up,
one layer per line, or the cycles found.
"""
import os
import re
import sys

src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', 'src')
deps = {}
for name in sorted(os.listdir(src)):
    if not name.endswith(('.c', '.h')):
        continue
    mod = name[:-2]
    with open(os.path.join(src, name), encoding='utf-8') as f:
        text = f.read()
    for inc in re.findall(r'^#include "([A-Za-z0-9_]+)\.h"', text, re.M):
        if inc != mod and os.path.exists(os.path.join(src, inc + '.h')):
            deps.setdefault(mod, set()).add(inc)
    deps.setdefault(mod, set())

# Layers: a module's layer is one above the highest of what it includes.
layer, visiting, cycles = {}, [], []


def visit(m):
    if m in layer:
        return layer[m]
    if m in visiting:
        cycles.append(visiting[visiting.index(m):] + [m])
        return 0
    visiting.append(m)
    layer[m] = 1 + max((visit(d) for d in deps[m]), default=-1)
    visiting.pop()
    return layer[m]


for m in deps:
    visit(m)
if cycles:
    for c in cycles:
        print('cycle: ' + ' -> '.join(c))
    sys.exit(1)
for n in range(max(layer.values()) + 1):
    print('%2d: %s' % (n, ' '.join(sorted(m for m in layer if layer[m] == n))))
