/*
 * notify.c - tells a receiver when a task has reached a final state.
 *
 * What: with [notify] url set, the JSON view of every task that ends
 * (view_task, the same document GET /tasks/{id}.json answers) is POSTed
 * to that URL. A 2xx answer delivers it; anything else (another status, a
 * refused connection, a timeout) is tried again later, with a delay that
 * doubles from retry_delay up to retry_max_delay, with jitter, until
 * [notify] retries attempts have been made; then the notification is
 * given up ("failed") with the last error on the task.
 *
 * Why the store drives it: the worker that finishes a task marks its
 * notification pending in the same transaction as the final state
 * (store_finish), so a notification is never lost to a crash or a
 * restart, nor sent for a state that was not committed. This thread only
 * asks the store what is due (store_notify_due), delivers, and records the
 * outcome (store_notify_result). It is one thread with its own store
 * connection and one libcurl handle (kept, so a receiver's keep-alive
 * connection is reused); deliveries go one at a time, in due order.
 *
 * Waking: pool workers call notify_wake when a task ends, so a delivery
 * starts at once; otherwise the thread looks every second (retries become
 * due by the clock, and another process may have finished tasks).
 *
 * Settings: notify_reload (SIGHUP) hands over a new URL and new numbers;
 * the thread copies them under the lock at the start of every round, so a
 * round runs with one consistent set. The store path and the CA file are
 * read from the configuration given at start: they change only with a
 * restart.
 *
 * Stopping: notify_stop raises a flag the libcurl progress callback sees,
 * so a POST in flight is aborted within moments (it is bounded by
 * [notify] timeout in any case); an aborted delivery records nothing and
 * stays pending for the next start.
 *
 * Secrets: the URL may carry a user and password (sent as HTTP Basic
 * credentials); it reaches log lines and the task's notification error
 * only through url_mask.
 */
#include "apubid.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Due notifications fetched per query. */
#define NOTIFY_BATCH 16

/* The [notify] settings one round runs with. */
struct notify_settings {
	char *url; /* NULL: notifications are off */
	int retries;
	int retry_delay;
	int retry_max_delay;
	int timeout;
};

/* notify_lock guards notify_set, notify_generation and notify_running. */
static pthread_mutex_t notify_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t notify_cond;
static pthread_once_t notify_once = PTHREAD_ONCE_INIT;
static struct notify_settings notify_set;
static uint64_t notify_generation;
static int notify_running;
static pthread_t notify_thread;
static volatile sig_atomic_t notify_stopping;
/* For the store path and the CA file, which only a restart changes. */
static const struct config *notify_cfg;

/* The thread waits on the monotonic clock, so a change of the wall clock
 * cannot stretch a wait. */
static void notify_init_cond(void)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&notify_cond, &attr);
	pthread_condattr_destroy(&attr);
}

void notify_wake(void)
{
	pthread_once(&notify_once, notify_init_cond);
	pthread_mutex_lock(&notify_lock);
	notify_generation++;
	pthread_cond_signal(&notify_cond);
	pthread_mutex_unlock(&notify_lock);
}

static uint64_t notify_seen(void)
{
	pthread_mutex_lock(&notify_lock);
	uint64_t g = notify_generation;
	pthread_mutex_unlock(&notify_lock);
	return g;
}

/* Waits until notify_wake, notify_stop or one second, whichever is first,
 * unless a wake-up came since `seen`. */
static void notify_sleep(uint64_t seen)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += 1;
	pthread_mutex_lock(&notify_lock);
	while (!notify_stopping && notify_generation == seen)
		if (pthread_cond_timedwait(&notify_cond, &notify_lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&notify_lock);
}

/* Milliseconds before the attempt after attempt `n`: doubling from
 * retry_delay, capped at retry_max_delay, half of it fixed and half random
 * so that notifications failing together are not retried together. */
static int64_t notify_backoff_ms(const struct notify_settings *set, int n)
{
	static __thread unsigned int seed;
	if (!seed)
		seed = (unsigned int)util_mono_ms() ^ (unsigned int)getpid();
	int64_t max = (int64_t)set->retry_max_delay * 1000;
	int64_t d = (int64_t)set->retry_delay * 1000;
	for (int i = 1; i < n && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	return d / 2 + (d > 1 ? (int64_t)(rand_r(&seed) % (d / 2 + 1)) : 0);
}

/* What one POST learns from the answer's header block. */
struct notify_answer {
	char status[256]; /* the last status line, e.g. "HTTP/1.1 503 Service Unavailable" */
};

static size_t notify_on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct notify_answer *a = arg;
	size_t len = size * n;
	if (len > 5 && memcmp(buf, "HTTP/", 5) == 0) {
		while (len && (buf[len - 1] == '\r' || buf[len - 1] == '\n'))
			len--;
		if (len >= sizeof a->status)
			len = sizeof a->status - 1;
		memcpy(a->status, buf, len);
		a->status[len] = '\0';
		util_utf8_sanitize(a->status);
	}
	return size * n;
}

/* The answer's body is of no interest. */
static size_t notify_on_body(char *buf, size_t size, size_t n, void *arg)
{
	(void)buf;
	(void)arg;
	return size * n;
}

static int notify_on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
			      curl_off_t ultotal, curl_off_t ulnow)
{
	(void)arg;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return notify_stopping ? 1 : 0;
}

/* POSTs `json` to the URL. Returns 0 for a 2xx answer, 1 when notify_stop
 * aborted it, -1 with err naming the (masked) URL and what went wrong. */
static int notify_post(CURL *h, const struct notify_settings *set, const char *json, char *err,
		       size_t errlen)
{
	struct notify_answer a = { "" };
	char cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	/* No "Expect: 100-continue" round trip before the body. */
	hdr = curl_slist_append(hdr, "Expect:");
	if (!hdr) {
		util_error(err, errlen, "out of memory");
		return -1;
	}
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, set->url);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, json);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json));
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "apubid/" APUBID_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)set->timeout);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)set->timeout);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, notify_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, &a);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, notify_on_body);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, notify_on_progress);
	if (notify_cfg->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, notify_cfg->ca_file);

	CURLcode rc = curl_easy_perform(h);
	curl_slist_free_all(hdr);
	if (rc == CURLE_ABORTED_BY_CALLBACK && notify_stopping)
		return 1;
	char *masked = url_mask(set->url);
	int out = -1;
	if (rc != CURLE_OK) {
		util_utf8_sanitize(cerr);
		util_error(err, errlen, "%s: %s%s%s", masked, curl_easy_strerror(rc),
			   *cerr ? ": " : "", cerr);
	} else {
		long code = 0;
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 200 && code <= 299)
			out = 0;
		else if (*a.status)
			util_error(err, errlen, "%s: %s", masked, a.status);
		else
			util_error(err, errlen, "%s: HTTP status %ld", masked, code);
	}
	free(masked);
	return out;
}

/* One delivery attempt for task `id`, and its outcome in the store. */
static void notify_one(struct store *s, CURL *h, const struct notify_settings *set,
		       const char *id)
{
	struct task t;
	int rc = store_get(s, id, &t);
	if (rc != 0)
		return; /* pruned meanwhile (1), or the store said why (-1) */
	int pending = t.notify_state == NOTIFY_PENDING;
	int attempt = t.notify_attempts + 1;
	task_clear(&t);
	if (!pending)
		return;

	char err[1024] = "";
	char *json = NULL;
	rc = view_task(s, id, VIEW_JSON, 0, &json);
	if (rc == 1)
		return;
	if (rc < 0)
		util_error(err, sizeof err, "cannot render the task's view");
	else
		rc = notify_post(h, set, json, err, sizeof err);
	free(json);
	if (rc == 1)
		return; /* stopping: stays pending */

	char *masked = url_mask(set->url);
	if (rc == 0) {
		if (store_notify_result(s, id, NOTIFY_DELIVERED, attempt, 0, NULL) == 0)
			log_info("task %s: notification delivered to %s (attempt %d)", id, masked,
				 attempt);
		metrics_notify("delivered");
	} else if (attempt >= set->retries) {
		if (store_notify_result(s, id, NOTIFY_FAILED, attempt, 0, err) == 0)
			log_warn("task %s: notification given up after %d attempt%s: %s", id, attempt,
				 attempt == 1 ? "" : "s", err);
		metrics_notify("failed");
	} else {
		int64_t delay = notify_backoff_ms(set, attempt);
		if (store_notify_result(s, id, NOTIFY_PENDING, attempt, util_now_ms() + delay, err) == 0)
			log_warn("task %s: notification attempt %d failed, retrying in %lld s: %s", id,
				 attempt, (long long)((delay + 999) / 1000), err);
		metrics_notify("retry");
	}
	free(masked);
}

static void notify_settings_free(struct notify_settings *set)
{
	if (set->url)
		memset(set->url, 0, strlen(set->url));
	free(set->url);
	set->url = NULL;
}

static void *notify_main(void *arg)
{
	(void)arg;
	char err[512];
	struct store *s = NULL;
	while (!notify_stopping && !(s = store_open(notify_cfg, err, sizeof err))) {
		log_error("notify: %s; trying again", err);
		notify_sleep(notify_seen());
	}
	CURL *h = s ? curl_easy_init() : NULL;
	if (s && !h)
		log_error("notify: cannot create a libcurl handle; notifications stay pending");
	while (h && !notify_stopping) {
		struct notify_settings set;
		pthread_mutex_lock(&notify_lock);
		uint64_t seen = notify_generation;
		set = notify_set;
		set.url = util_strdup(notify_set.url);
		pthread_mutex_unlock(&notify_lock);

		int n = 0;
		if (set.url) {
			char ids[NOTIFY_BATCH][TASKID_LEN];
			n = store_notify_due(s, util_now_ms(), ids, NOTIFY_BATCH);
			for (int i = 0; i < n && !notify_stopping; i++)
				notify_one(s, h, &set, ids[i]);
		}
		notify_settings_free(&set);
		if (n < NOTIFY_BATCH)
			notify_sleep(seen);
	}
	if (h)
		curl_easy_cleanup(h);
	store_close(s);
	return NULL;
}

/* Starts the thread when a URL is set and it is not running yet. */
static int notify_spawn(void)
{
	pthread_mutex_lock(&notify_lock);
	int start = notify_set.url && !notify_running && !notify_stopping;
	char *masked = start ? url_mask(notify_set.url) : NULL;
	if (start) {
		int rc = pthread_create(&notify_thread, NULL, notify_main, NULL);
		if (rc != 0) {
			log_error("cannot start the notification thread: %s", strerror(rc));
			start = -1;
		} else {
			notify_running = 1;
		}
	}
	pthread_mutex_unlock(&notify_lock);
	if (start > 0)
		log_info("notifications of final tasks go to %s", masked);
	free(masked);
	return start < 0 ? -1 : 0;
}

/* Copies the [notify] settings; called with notify_lock held. */
static void notify_take(const struct config *c)
{
	notify_settings_free(&notify_set);
	notify_set.url = util_strdup(c->notify_url);
	notify_set.retries = c->notify_retries;
	notify_set.retry_delay = c->notify_retry_delay;
	notify_set.retry_max_delay = c->notify_retry_max_delay;
	notify_set.timeout = c->notify_timeout;
	notify_generation++;
	pthread_cond_signal(&notify_cond);
}

int notify_start(const struct config *c)
{
	pthread_once(&notify_once, notify_init_cond);
	notify_cfg = c;
	pthread_mutex_lock(&notify_lock);
	notify_take(c);
	pthread_mutex_unlock(&notify_lock);
	return notify_spawn();
}

void notify_reload(const struct config *c)
{
	pthread_once(&notify_once, notify_init_cond);
	if (!notify_cfg)
		return; /* not started: nothing to reload into */
	pthread_mutex_lock(&notify_lock);
	int was = notify_set.url != NULL;
	notify_take(c);
	int now = notify_set.url != NULL;
	pthread_mutex_unlock(&notify_lock);
	if (was && !now)
		log_info("notifications are off; pending ones wait until a url is set again");
	notify_spawn();
}

void notify_stop(void)
{
	pthread_once(&notify_once, notify_init_cond);
	pthread_mutex_lock(&notify_lock);
	notify_stopping = 1;
	pthread_cond_broadcast(&notify_cond);
	int running = notify_running;
	pthread_mutex_unlock(&notify_lock);
	if (running)
		pthread_join(notify_thread, NULL);
	pthread_mutex_lock(&notify_lock);
	notify_running = 0;
	notify_settings_free(&notify_set);
	pthread_mutex_unlock(&notify_lock);
}
