/* A stand-in for libedgetpu.so.1, built by the test suite (tests/fakes/libedgetpu.py).
 *
 * It exports the two functions TFLite's external-delegate loader (load_delegate) looks
 * up, and behaves as EDGEPOSE_FAKE_EDGETPU says when tflite_plugin_create_delegate runs:
 *
 *   segv      writes through a null pointer: the process dies of SIGSEGV, as with a
 *             libedgetpu built against another TensorFlow than the interpreter
 *   hang      never returns (sleeps in pause(); SIGINT does not end it, SIGTERM does)
 *   abort     calls abort(): SIGABRT
 *   nodevice  returns NULL, as libedgetpu does when no accelerator answers:
 *             load_delegate raises ValueError (also the default when the variable is unset)
 *   inert     returns a delegate that claims no op: a CPU model runs on the CPU, an
 *             Edge TPU model fails with "unresolved custom op: edgetpu-custom-op"
 *
 * An unknown value is reported through the error callback and returns NULL.
 */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void (*error_reporter)(const char *);

/* The head of TfLiteDelegate (tensorflow/lite/core/c/common.h): data_, Prepare, three
 * buffer-handle callbacks, flags, opaque_delegate_builder. Fields added later by newer
 * TFLite versions sit after these and stay zero in the padding. */
struct fake_delegate {
    void *data;
    int (*prepare)(void *context, void *delegate);
    void *copy_from_buffer_handle;
    void *copy_to_buffer_handle;
    void *free_buffer_handle;
    int64_t flags;
    void *opaque_delegate_builder;
    void *padding[16];
};

static int prepare_claims_nothing(void *context, void *delegate) {
    (void)context;
    (void)delegate;
    return 0; /* kTfLiteOk, no node replaced */
}

void *tflite_plugin_create_delegate(char **keys, char **values, size_t count,
                                    error_reporter report) {
    (void)keys;
    (void)values;
    (void)count;
    const char *mode = getenv("EDGEPOSE_FAKE_EDGETPU");
    if (mode == NULL || strcmp(mode, "nodevice") == 0) {
        return NULL;
    }
    if (strcmp(mode, "segv") == 0) {
        volatile int *nowhere = NULL;
        *nowhere = 1;
        return NULL;
    }
    if (strcmp(mode, "hang") == 0) {
        for (;;) {
            pause();
        }
    }
    if (strcmp(mode, "abort") == 0) {
        abort();
    }
    if (strcmp(mode, "inert") == 0) {
        struct fake_delegate *d = calloc(1, sizeof *d);
        if (d != NULL) {
            d->prepare = prepare_claims_nothing;
        }
        return d;
    }
    if (report != NULL) {
        report("fake libedgetpu: unknown EDGEPOSE_FAKE_EDGETPU value");
    }
    return NULL;
}

void tflite_plugin_destroy_delegate(void *delegate) {
    free(delegate); /* NULL after a failed create: free(NULL) is a no-op */
}
