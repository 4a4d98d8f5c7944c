#include <stdlib.h>
#include <string.h>

#include "b64.h"
#include "tap.h"
#include "util.h"

int
main(void)
{
	struct buf b;
	char	   t[40], u1[37], u2[37];
	char	  *s;

	ok(utf8_valid("abc", 3), "ascii");
	ok(utf8_valid("\xf0\x9f\x8e\xac", 4), "4-byte emoji");
	ok(!utf8_valid("\xf0\x9f\x8e", 3), "truncated sequence");
	ok(!utf8_valid("\xf4\x90\x80\x80", 4), "above U+10FFFF");
	ok(!utf8_valid("\xe0\x80\x80", 3), "overlong 3-byte");
	ok(!utf8_valid("\x80", 1), "lone continuation");

	buf_init(&b);
	buf_adds(&b, "a");
	buf_addf(&b, "%d-%s", 42, "x");
	for (int i = 0; i < 100; i++)
		buf_add(&b, "0123456789", 10);
	is_int(b.len, 1005, "buffer length");
	ok(strncmp(b.data, "a42-x0123", 9) == 0, "buffer content");
	s = buf_steal(&b);
	ok(b.data == NULL && strlen(s) == 1005, "steal detaches");
	free(s);

	format_time_ms(1763728560123LL, t, sizeof(t));
	is_str(t, "2025-11-21T12:36:00.123Z", "rfc3339 ms");

	uuid_v4(u1);
	uuid_v4(u2);
	ok(strlen(u1) == 36 && u1[14] == '4', "uuid v4 shape %s", u1);
	ok(strcmp(u1, u2) != 0, "uuids differ");

	{
		char bad[] = "ok \xe2\x82 cut \xff end \xc3\xa9";
		utf8_sanitize(bad);
		is_str(bad, "ok ?? cut ? end \xc3\xa9",
		    "sanitize replaces broken sequences, keeps good ones");
		ok(utf8_valid(bad, strlen(bad)), "and the result is UTF-8");
	}

	s = b64_encode("\xff\x00hi", 4);
	is_str(s, "/wBoaQ==", "base64");
	free(s);
	return tap_done();
}
