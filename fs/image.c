/* image.c - one decompressed kernel image, shared by every descriptor
 * that reads it.
 *
 * A zstd kernel of a few KB may decompress to 128 MiB: one copy per open
 * would let any user make the daemon hold a copy per descriptor.  Readers
 * share one copy, counted, freed by the last; it is decompressed under a
 * lock, so concurrent first opens make one copy too. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rvffs.h"

struct image {
	struct image *next;
	unsigned refs;
	rvf_segment seg;        /* the kernel segment it came from */
	uint8_t image_hash[32];
	unsigned char *bytes;
	size_t len;
	char *cmdline;          /* or NULL */
};

static pthread_mutex_t images_mu = PTHREAD_MUTEX_INITIALIZER;
static struct image *images;

/* Segments are immutable: the same header at the same offset is the same
 * kernel (a compaction that moves it makes a new entry). */
static bool same_kernel(const struct image *im, const rvf_kernel_info *k)
{
	const rvf_segment *s = k->segment;
	return im->seg.offset == s->offset && im->seg.id == s->id &&
	       im->seg.payload_length == s->payload_length &&
	       !memcmp(im->seg.content_hash, s->content_hash, sizeof(s->content_hash)) &&
	       !memcmp(im->image_hash, k->image_hash, sizeof(k->image_hash));
}

int image_kernel(rvffs *fs, rvf_view *v, struct image **out)
{
	rvf_kernel_info k;
	if (!rvf_view_kernel(v, &k) || !k.segment)
		return -ENOENT;
	pthread_mutex_lock(&images_mu);
	struct image *im;
	for (im = images; im; im = im->next)
		if (same_kernel(im, &k))
			break;
	int rc = 0;
	if (im) {
		im->refs++;
	} else if (!(im = calloc(1, sizeof(*im)))) {
		rc = -ENOMEM;
	} else {
		rvf_error err;
		if (rvf_view_kernel_image(v, &im->bytes, &im->len, &im->cmdline,
					  &err) != RVF_OK) {
			free(im);
			im = NULL;
			rc = -fs_rvf_errno(fs, "kernel", &err);
		} else {
			im->refs = 1;
			im->seg = *k.segment;
			memcpy(im->image_hash, k.image_hash, sizeof(im->image_hash));
			im->next = images;
			images = im;
		}
	}
	pthread_mutex_unlock(&images_mu);
	*out = im;
	return rc;
}

const unsigned char *image_bytes(const struct image *im, size_t *len)
{
	*len = im->len;
	return im->bytes;
}

const char *image_cmdline(const struct image *im)
{
	return im->cmdline;
}

void image_put(struct image *im)
{
	pthread_mutex_lock(&images_mu);
	bool last = --im->refs == 0;
	if (last)
		for (struct image **p = &images; *p; p = &(*p)->next)
			if (*p == im) {
				*p = im->next;
				break;
			}
	pthread_mutex_unlock(&images_mu);
	if (last) {
		free(im->bytes);
		free(im->cmdline);
		free(im);
	}
}
