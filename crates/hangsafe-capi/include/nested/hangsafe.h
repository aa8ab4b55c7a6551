/*
 * Installed as <includedir>/hangsafe/hangsafe/hangsafe.h, so that
 * `#include <hangsafe/hangsafe.h>` works with only the flags of
 * `pkg-config --cflags hangsafe` (-I<includedir>/hangsafe), whatever the
 * prefix. It is the real header one directory up.
 */
#include "../hangsafe.h"
