/*
** libuv_timers.c - baseline (c): N one-shot uv_timer_t with random delays in [0, 1000] ms, the way
** a C program uses libuv directly. Mode "fire" lets uv_run() fire them all; mode "cancel" stops
** each one (uv_timer_stop) right after all are started. Prints the CPU time per timer as one
** `result` line for bench/run.lua.
** Usage: libuv_timers fire|cancel N
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <uv.h>

static long fired;   /* callbacks run: checked against N so the work cannot be skipped */

static void on_timer (uv_timer_t *t) {
  (void)t;
  fired++;
}

static double cpu_seconds (void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main (int argc, char **argv) {
  int cancel = argc > 1 && strcmp(argv[1], "cancel") == 0;
  long n = argc > 2 ? atol(argv[2]) : 1000000, i;
  uv_loop_t *loop = uv_default_loop();
  uv_timer_t *timers = malloc((size_t)n * sizeof *timers);
  double t0, t1;
  if (timers == NULL || n <= 0) return 1;
  srand(42);
  memset(timers, 0, (size_t)n * sizeof *timers);   /* touch the pages before timing */
  t0 = cpu_seconds();
  for (i = 0; i < n; i++) {
    uv_timer_init(loop, &timers[i]);
    uv_timer_start(&timers[i], on_timer, (uint64_t)(rand() % 1001), 0);
  }
  if (cancel)
    for (i = 0; i < n; i++) uv_timer_stop(&timers[i]);
  uv_run(loop, UV_RUN_DEFAULT);
  t1 = cpu_seconds();
  if (fired != (cancel ? 0 : n)) {
    fprintf(stderr, "libuv_timers: %ld of %ld timers fired\n", fired, n);
    return 1;
  }
  printf("result ns_per_op=%.6g n=%ld fired=%ld bytes_per_timer=%zu\n",
         (t1 - t0) / (double)n * 1e9, n, fired, sizeof(uv_timer_t));
  free(timers);
  return 0;
}
