// clock_nanosleep as the kernel does it, preloaded before libfaketime.
//
// libfaketime 0.9.10 (Debian 12, Ubuntu 24.04) moves every absolute-deadline sleep onto
// its fake clock even when told to leave CLOCK_MONOTONIC alone, so a monotonic deadline
// (Python 3.11's time.sleep) fails with EINVAL; fixed upstream in 0.9.11. Here monotonic
// and relative sleeps go straight to the kernel, and a CLOCK_REALTIME deadline, given in
// the service's (fake) time, is moved to the real one by the offset libfaketime applies.
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NS 1000000000L

int clock_nanosleep(clockid_t clock, int flags, const struct timespec *request,
                    struct timespec *remain)
{
    struct timespec deadline = *request;
    if ((flags & TIMER_ABSTIME) && clock == CLOCK_REALTIME) {
        struct timespec fake, real;
        clock_gettime(CLOCK_REALTIME, &fake); /* libfaketime's */
        syscall(SYS_clock_gettime, CLOCK_REALTIME, &real);
        long long offset = (fake.tv_sec - real.tv_sec) * NS + (fake.tv_nsec - real.tv_nsec);
        long long at = deadline.tv_sec * NS + deadline.tv_nsec - offset;
        deadline.tv_sec = at / NS;
        deadline.tv_nsec = at % NS;
    }
    if (syscall(SYS_clock_nanosleep, clock, flags, &deadline, remain) == -1)
        return errno; /* clock_nanosleep returns the error, it does not set errno */
    return 0;
}
