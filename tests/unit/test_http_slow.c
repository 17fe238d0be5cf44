/* test_http_slow.c: the slow-body decision (http_slow.c) and the header deadline
 * (http_deadline.c) with given byte counts and clock values: no real time passes. */
#include <criterion/criterion.h>

#include "http_deadline.h"
#include "http_slow.h"

Test(http_slow, nothing_is_too_slow_within_the_grace_period)
{
    cr_assert_not(http_body_too_slow(0, 0, 30, 1024));
    cr_assert_not(http_body_too_slow(0, 30000, 30, 1024), "exactly at the end of the grace");
    cr_assert(http_body_too_slow(0, 30001, 30, 1024), "no byte in 30 s");
}

Test(http_slow, each_min_rate_bytes_buy_a_second)
{
    /* 10 KiB at 1 KiB/s: 10 s more than the grace */
    cr_assert_not(http_body_too_slow(10240, 40000, 30, 1024));
    cr_assert(http_body_too_slow(10240, 40001, 30, 1024));
    /* a trickle of one byte a second falls behind as soon as the grace is over */
    for (long long t = 31; t < 100; t++)
        cr_assert(http_body_too_slow(t, t * 1000, 30, 1024), "t = %lld", t);
    /* a fast client never is too slow */
    for (long long t = 31; t < 10000; t += 97)
        cr_assert_not(http_body_too_slow(t * 100000, t * 1000, 30, 1024), "t = %lld", t);
}

Test(http_slow, off_without_a_rate_and_with_no_grace)
{
    cr_assert_not(http_body_too_slow(0, 1LL << 40, 30, 0), "min_rate 0: no floor");
    cr_assert(http_body_too_slow(0, 1, 0, 1), "grace 0: the rate applies at once");
    cr_assert_not(http_body_too_slow(1, 1000, 0, 1));
    cr_assert_not(http_body_too_slow(1LL << 40, 1000000, 30, 1 << 30), "1 TiB at 1 GiB/s: 1054 s");
    cr_assert(http_body_too_slow(1LL << 40, 1054001, 30, 1 << 30));
}

Test(http_slow, a_header_is_late_after_its_timeout)
{
    cr_assert_not(http_header_late(1000, 1000, 30));
    cr_assert_not(http_header_late(1000, 31000, 30), "exactly at the deadline");
    cr_assert(http_header_late(1000, 31001, 30));
    cr_assert_not(http_header_late(0, 1LL << 40, 0), "timeout 0: no deadline");
    cr_assert_not(http_header_late(5000, 1000, 1), "a clock value before the start is not late");
}
