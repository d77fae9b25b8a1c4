/*
 * libaudiopipe: the back end of an audio product as an embeddable library.
 * Include this header for the whole public API, or the area headers below
 * for a part of it. Link with `pkg-config --libs libaudiopipe` or the CMake
 * target audiopipe::audiopipe.
 */
#ifndef AUDIOPIPE_AUDIOPIPE_H
#define AUDIOPIPE_AUDIOPIPE_H

#include <audiopipe/version.h>

#include <audiopipe/common.h>
#include <audiopipe/error.h>
#include <audiopipe/config.h>
#include <audiopipe/limits.h>
#include <audiopipe/io.h>
#include <audiopipe/probe.h>
#include <audiopipe/analysis.h>
#include <audiopipe/waveform.h>
#include <audiopipe/rendition.h>
#include <audiopipe/process.h>

#endif
