// Intentionally empty: CKVM is header-only, but SwiftPM wants one source file.
#include "CKVM.h"
