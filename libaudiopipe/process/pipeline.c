/*
 * The fan-out of decoded blocks to sinks, inline and on worker threads.
 *
 * One mutex guards every queue, the stop flag and the first error. Each
 * worker waits on its own condition variable, and the reader waits on
 * `space` when a queue is full. A block holds one reference per worker
 * and returns to a free list when the last worker releases it, so the
 * number of blocks alive is bounded by the queue capacity.
 *
 * Wake-ups are batched both ways. A worker that emptied its queue sleeps
 * until WAKE_BLOCKS are queued (or the stream ends), and a reader held
 * back by a full queue sleeps until that queue is down to RESUME_BLOCKS.
 * Waking per block made the reader and the encoder take turns block by
 * block: with AAC's 1024-frame blocks that was about 3 context switches
 * per block, 76 000 for a 9-minute track.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/error_internal.h"
#include "process/pipeline.h"

/* Blocks queued per worker: 16 x 4096 frames is about 1.4 s at 48 kHz. */
#define QUEUE_CAPACITY 16
/* A sleeping worker is woken once this many blocks wait for it. */
#define WAKE_BLOCKS 4
/* A reader waiting for a full queue is woken when it is down to this. */
#define RESUME_BLOCKS (QUEUE_CAPACITY / 2)

typedef struct block {
  atomic_int references;
  int frames;
  struct block *next_free;
  float **planes; /* channels pointers into the same allocation */
} block_t;

typedef struct pipeline pipeline_t;

typedef struct worker {
  pipeline_t *pipeline;
  pthread_t thread;
  block_t *queue[QUEUE_CAPACITY];
  int head;
  int count;
  pthread_cond_t ready; /* blocks are queued, the stream ended, or stop */
  int sleeping;         /* waiting on `ready` */
  size_t *members;      /* indexes of this worker's sinks */
  size_t member_count;
} worker_t;

struct pipeline {
  pthread_mutex_t lock;
  pthread_cond_t space; /* the queue of `full_worker` has room, or stop */
  int full_worker;      /* index the reader waits for, -1 when none */
  int stop;
  int end_of_stream;
  ap_status_t status; /* the first failure */
  ap_error_t error;

  ap_pipeline_sink_t *sinks;
  int channels;
  block_t *free_blocks;
  worker_t *workers;
  int worker_count;
};

int ap_pipeline_worker_count(const ap_pipeline_sink_t *sinks, size_t sink_count,
                             int max_threads) {
  int threaded = 0;
  for (size_t i = 0; i < sink_count; i++) {
    threaded += sinks[i].sink->wants_thread != 0;
  }

  int limit;
  if (max_threads == 1) {
    return 0;
  } else if (max_threads == 0) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    limit = cores > 0 ? (int)cores : 1;
  } else {
    limit = max_threads - 1;
  }
  return threaded < limit ? threaded : limit;
}

/* Records the first failure and wakes every thread. Call with the lock
 * held. */
static void fail_locked(pipeline_t *pipeline, ap_status_t status,
                        const ap_error_t *error) {
  if (pipeline->status == AP_OK) {
    pipeline->status = status;
    pipeline->error = *error;
  }
  pipeline->stop = 1;
  pthread_cond_broadcast(&pipeline->space);
  for (int i = 0; i < pipeline->worker_count; i++) {
    pthread_cond_broadcast(&pipeline->workers[i].ready);
  }
}

static void fail(pipeline_t *pipeline, ap_status_t status,
                 const ap_error_t *error) {
  pthread_mutex_lock(&pipeline->lock);
  fail_locked(pipeline, status, error);
  pthread_mutex_unlock(&pipeline->lock);
}

static int stopped(pipeline_t *pipeline) {
  pthread_mutex_lock(&pipeline->lock);
  int stop = pipeline->stop;
  pthread_mutex_unlock(&pipeline->lock);
  return stop;
}

static ap_status_t sink_write(ap_pipeline_sink_t *entry,
                              const float *const *planes, int frames,
                              ap_error_t *error) {
  double begin = ap_monotonic_seconds();
  ap_status_t status =
      entry->sink->ops->write(entry->sink, planes, frames, error);
  entry->busy_seconds += ap_monotonic_seconds() - begin;
  if (status != AP_OK) {
    ap_error_prefix(error, "%s", entry->label);
  }
  return status;
}

static ap_status_t sink_finish(ap_pipeline_sink_t *entry, ap_error_t *error) {
  double begin = ap_monotonic_seconds();
  ap_status_t status = entry->sink->ops->finish(entry->sink, error);
  entry->busy_seconds += ap_monotonic_seconds() - begin;
  if (status != AP_OK) {
    ap_error_prefix(error, "%s", entry->label);
  }
  return status;
}

static block_t *block_acquire(pipeline_t *pipeline) {
  pthread_mutex_lock(&pipeline->lock);
  block_t *block = pipeline->free_blocks;
  if (block) {
    pipeline->free_blocks = block->next_free;
  }
  pthread_mutex_unlock(&pipeline->lock);
  if (block) {
    return block;
  }

  /* Header, plane pointers and samples in one allocation. */
  size_t channels = (size_t)pipeline->channels;
  size_t size = sizeof(block_t) + channels * sizeof(float *) +
                channels * AP_SINK_MAX_BLOCK_FRAMES * sizeof(float);
  block = malloc(size);
  if (!block) {
    return NULL;
  }
  block->planes = (float **)(block + 1);
  float *samples = (float *)(block->planes + channels);
  for (size_t c = 0; c < channels; c++) {
    block->planes[c] = samples + c * AP_SINK_MAX_BLOCK_FRAMES;
  }
  return block;
}

static void block_release(pipeline_t *pipeline, block_t *block) {
  if (atomic_fetch_sub(&block->references, 1) != 1) {
    return;
  }
  pthread_mutex_lock(&pipeline->lock);
  block->next_free = pipeline->free_blocks;
  pipeline->free_blocks = block;
  pthread_mutex_unlock(&pipeline->lock);
}

static ap_status_t finish_members(worker_t *worker, ap_error_t *error) {
  for (size_t i = 0; i < worker->member_count; i++) {
    ap_pipeline_sink_t *entry = &worker->pipeline->sinks[worker->members[i]];
    ap_status_t status = sink_finish(entry, error);
    if (status != AP_OK) {
      return status;
    }
  }
  return AP_OK;
}

static void *worker_main(void *argument) {
  worker_t *worker = argument;
  pipeline_t *pipeline = worker->pipeline;
  ap_error_t error = {0};

  pthread_mutex_lock(&pipeline->lock);
  for (;;) {
    while (worker->count == 0 && !pipeline->end_of_stream && !pipeline->stop) {
      worker->sleeping = 1;
      pthread_cond_wait(&worker->ready, &pipeline->lock);
      worker->sleeping = 0;
    }
    if (pipeline->stop) {
      break;
    }

    if (worker->count == 0) {
      /* The stream ended and every queued block has been written. */
      pthread_mutex_unlock(&pipeline->lock);
      ap_status_t status = finish_members(worker, &error);
      pthread_mutex_lock(&pipeline->lock);
      if (status != AP_OK) {
        fail_locked(pipeline, status, &error);
      }
      break;
    }

    block_t *block = worker->queue[worker->head];
    worker->head = (worker->head + 1) % QUEUE_CAPACITY;
    worker->count--;
    if (pipeline->full_worker == (int)(worker - pipeline->workers) &&
        worker->count <= RESUME_BLOCKS) {
      pthread_cond_signal(&pipeline->space);
    }
    pthread_mutex_unlock(&pipeline->lock);

    ap_status_t status = AP_OK;
    for (size_t i = 0; i < worker->member_count && status == AP_OK; i++) {
      status = sink_write(&pipeline->sinks[worker->members[i]],
                          (const float *const *)block->planes, block->frames,
                          &error);
    }
    block_release(pipeline, block);

    pthread_mutex_lock(&pipeline->lock);
    if (status != AP_OK) {
      fail_locked(pipeline, status, &error);
      break;
    }
  }
  pthread_mutex_unlock(&pipeline->lock);
  return NULL;
}

/* Copies the source's block once and queues it for every worker, waiting
 * while a queue is full. Returns 0 when the pipeline stopped meanwhile. */
static int distribute(pipeline_t *pipeline, const float *const *planes,
                      int frames) {
  block_t *block = block_acquire(pipeline);
  if (!block) {
    ap_error_t error = {0};
    fail(pipeline, AP_NO_MEMORY(&error), &error);
    return 0;
  }
  for (int c = 0; c < pipeline->channels; c++) {
    memcpy(block->planes[c], planes[c], sizeof(float) * (size_t)frames);
  }
  block->frames = frames;
  atomic_store(&block->references, pipeline->worker_count);

  pthread_mutex_lock(&pipeline->lock);
  for (int i = 0; i < pipeline->worker_count; i++) {
    worker_t *worker = &pipeline->workers[i];
    while (worker->count == QUEUE_CAPACITY && !pipeline->stop) {
      pipeline->full_worker = i;
      pthread_cond_wait(&pipeline->space, &pipeline->lock);
    }
    pipeline->full_worker = -1;
    if (pipeline->stop) {
      pthread_mutex_unlock(&pipeline->lock);
      /* Drop the references of the workers that did not get the block. */
      for (int rest = i; rest < pipeline->worker_count; rest++) {
        block_release(pipeline, block);
      }
      return 0;
    }
    worker->queue[(worker->head + worker->count) % QUEUE_CAPACITY] = block;
    worker->count++;
    if (worker->sleeping && worker->count >= WAKE_BLOCKS) {
      pthread_cond_signal(&worker->ready);
    }
  }
  pthread_mutex_unlock(&pipeline->lock);
  return 1;
}

/* Reads and distributes blocks until the end of the source or a stop. */
static void read_all(pipeline_t *pipeline, const ap_block_source_t *source,
                     const ap_pipeline_options_t *options,
                     ap_pipeline_sink_t *sinks, size_t sink_count,
                     const int *inline_sink, ap_pipeline_stats_t *stats) {
  ap_error_t error = {0};
  double span = options->progress_end - options->progress_start;

  while (!stopped(pipeline)) {
    const float *const *planes = NULL;
    int frames = 0;
    double begin = ap_monotonic_seconds();
    ap_status_t status =
        source->read(source->user_data, &planes, &frames, &error);
    stats->read_seconds += ap_monotonic_seconds() - begin;
    if (status != AP_OK) {
      fail(pipeline, status, &error);
      return;
    }
    if (frames == 0) {
      return;
    }
    if (frames < 0 || frames > AP_SINK_MAX_BLOCK_FRAMES) {
      fail(pipeline,
           ap_error_set(&error, AP_DOMAIN_MEDIA, AP_ERR_INTERNAL,
                        "the decoder returned a block of %d frames, outside "
                        "1..%d",
                        frames, AP_SINK_MAX_BLOCK_FRAMES),
           &error);
      return;
    }
    stats->frames += frames;

    for (size_t i = 0; i < sink_count; i++) {
      if (!inline_sink[i]) {
        continue;
      }
      status = sink_write(&sinks[i], planes, frames, &error);
      if (status != AP_OK) {
        fail(pipeline, status, &error);
        return;
      }
    }
    if (pipeline->worker_count > 0 && !distribute(pipeline, planes, frames)) {
      return;
    }

    if (options->progress && source->progress) {
      double fraction =
          options->progress_start + span * source->progress(source->user_data);
      if (ap_progress_report(options->progress, fraction, options->stage, 0) !=
          0) {
        fail(pipeline,
             ap_error_set(&error, AP_DOMAIN_CORE, AP_ERR_CANCELLED,
                          "cancelled by the progress callback during %s at "
                          "%.0f%%",
                          options->stage, fraction * 100.0),
             &error);
        return;
      }
    }
  }
}

static ap_status_t start_sinks(ap_pipeline_sink_t *sinks, size_t sink_count,
                               const ap_stream_format_t *format,
                               ap_error_t *error) {
  for (size_t i = 0; i < sink_count; i++) {
    double begin = ap_monotonic_seconds();
    ap_status_t status =
        sinks[i].sink->ops->start(sinks[i].sink, format, error);
    sinks[i].busy_seconds += ap_monotonic_seconds() - begin;
    if (status != AP_OK) {
      return ap_error_prefix(error, "%s", sinks[i].label);
    }
  }
  return AP_OK;
}

/* Gives each threaded sink a worker, round robin, and marks the others
 * inline. */
static ap_status_t assign_workers(pipeline_t *pipeline, size_t sink_count,
                                  int *inline_sink, ap_error_t *error) {
  for (size_t i = 0; i < sink_count; i++) {
    inline_sink[i] = 1;
  }
  if (pipeline->worker_count == 0) {
    return AP_OK;
  }

  int next = 0;
  for (size_t i = 0; i < sink_count; i++) {
    if (!pipeline->sinks[i].sink->wants_thread) {
      continue;
    }
    worker_t *worker = &pipeline->workers[next];
    if (!worker->members) {
      worker->members = calloc(sink_count, sizeof(size_t));
      if (!worker->members) {
        return AP_NO_MEMORY(error);
      }
    }
    worker->members[worker->member_count++] = i;
    inline_sink[i] = 0;
    next = (next + 1) % pipeline->worker_count;
  }
  return AP_OK;
}

static void release_pipeline(pipeline_t *pipeline) {
  for (int i = 0; i < pipeline->worker_count; i++) {
    worker_t *worker = &pipeline->workers[i];
    while (worker->count > 0) {
      block_release(pipeline, worker->queue[worker->head]);
      worker->head = (worker->head + 1) % QUEUE_CAPACITY;
      worker->count--;
    }
    pthread_cond_destroy(&worker->ready);
    free(worker->members);
  }
  while (pipeline->free_blocks) {
    block_t *next = pipeline->free_blocks->next_free;
    free(pipeline->free_blocks);
    pipeline->free_blocks = next;
  }
  free(pipeline->workers);
  pthread_cond_destroy(&pipeline->space);
  pthread_mutex_destroy(&pipeline->lock);
}

ap_status_t ap_pipeline_run(const ap_block_source_t *source,
                            const ap_stream_format_t *format,
                            ap_pipeline_sink_t *sinks, size_t sink_count,
                            const ap_pipeline_options_t *options,
                            ap_pipeline_stats_t *stats, ap_error_t *error) {
  ap_pipeline_stats_t unused_stats;
  if (!stats) {
    stats = &unused_stats;
  }
  memset(stats, 0, sizeof *stats);
  if (!source || !source->read || !format || (sink_count > 0 && !sinks) ||
      !options) {
    return ap_error_set(error, AP_DOMAIN_CORE, AP_ERR_INVALID_ARGUMENT,
                        "ap_pipeline_run: source, format, sinks and options "
                        "are required");
  }

  ap_status_t status = start_sinks(sinks, sink_count, format, error);
  if (status != AP_OK) {
    return status;
  }

  pipeline_t pipeline = {
      .full_worker = -1,
      .sinks = sinks,
      .channels = format->channels,
      .worker_count =
          ap_pipeline_worker_count(sinks, sink_count, options->max_threads),
  };
  pthread_mutex_init(&pipeline.lock, NULL);
  pthread_cond_init(&pipeline.space, NULL);
  int *inline_sink = calloc(sink_count > 0 ? sink_count : 1, sizeof(int));
  pipeline.workers =
      calloc((size_t)pipeline.worker_count + 1, sizeof(worker_t));
  if (!inline_sink || !pipeline.workers) {
    free(inline_sink);
    pipeline.worker_count = 0;
    release_pipeline(&pipeline);
    return AP_NO_MEMORY(error);
  }
  for (int i = 0; i < pipeline.worker_count; i++) {
    pipeline.workers[i].pipeline = &pipeline;
    pthread_cond_init(&pipeline.workers[i].ready, NULL);
  }
  status = assign_workers(&pipeline, sink_count, inline_sink, error);
  if (status != AP_OK) {
    free(inline_sink);
    release_pipeline(&pipeline);
    return status;
  }
  stats->worker_threads = pipeline.worker_count;

  int started = 0;
  for (; started < pipeline.worker_count; started++) {
    if (pthread_create(&pipeline.workers[started].thread, NULL, worker_main,
                       &pipeline.workers[started]) != 0) {
      ap_error_t thread_error = {0};
      fail(&pipeline,
           ap_error_set(&thread_error, AP_DOMAIN_CORE, AP_ERR_NO_MEMORY,
                        "cannot start worker thread %d of %d: lower "
                        "max_threads",
                        started + 1, pipeline.worker_count),
           &thread_error);
      break;
    }
  }

  if (options->progress) {
    if (ap_progress_report(options->progress, options->progress_start,
                           options->stage, 1) != 0) {
      ap_error_t cancel_error = {0};
      fail(&pipeline,
           ap_error_set(&cancel_error, AP_DOMAIN_CORE, AP_ERR_CANCELLED,
                        "cancelled by the progress callback before %s",
                        options->stage),
           &cancel_error);
    }
  }

  read_all(&pipeline, source, options, sinks, sink_count, inline_sink, stats);

  pthread_mutex_lock(&pipeline.lock);
  pipeline.end_of_stream = 1;
  for (int i = 0; i < pipeline.worker_count; i++) {
    pthread_cond_broadcast(&pipeline.workers[i].ready);
  }
  pthread_mutex_unlock(&pipeline.lock);

  for (size_t i = 0; i < sink_count; i++) {
    if (!inline_sink[i] || stopped(&pipeline)) {
      continue;
    }
    ap_error_t finish_error = {0};
    status = sink_finish(&sinks[i], &finish_error);
    if (status != AP_OK) {
      fail(&pipeline, status, &finish_error);
    }
  }

  for (int i = 0; i < started; i++) {
    pthread_join(pipeline.workers[i].thread, NULL);
  }

  status = pipeline.status;
  if (status != AP_OK && error) {
    *error = pipeline.error;
  }
  free(inline_sink);
  release_pipeline(&pipeline);
  return status;
}
