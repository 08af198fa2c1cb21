/* tunnelctl jproxy-keygen: make a jProxy v3 user, as the Java Keygen does
 * (spec section 5.3): an RSA-2048 key pair, a 256-byte salt and the login
 * token T = SHA-256(SPKI DER || salt).  Writes the client's key.dat (KSF)
 * and the server's user file DIR/<HEX(T)>.dat, both owner-only.
 *
 * The key file is refused when it already exists (the Java Keygen refuses
 * too), unless --force.  The user file is named after a fresh random token,
 * so it never replaces another user's file. */
#include "subcommands.h"

#include "out.h"

#include "util/error.h"
#include "util/fs.h"
#include "proto/jproxy_keys.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void keygen_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: %s jproxy-keygen --user NAME --key-out PATH --users-dir DIR [--force] [--json]\n"
        "Generate a jProxy v3 user: an RSA-2048 key pair, a salt and the login token.\n"
        "\n"
        "  --user NAME       user name stored in the server's user file\n"
        "                    (1..255 bytes of UTF-8, no NUL, no characters beyond U+FFFF)\n"
        "  --key-out PATH    the client's key file (key.dat): private key and token;\n"
        "                    the jproxy tunnel's key_file\n"
        "  --users-dir DIR   the server's users_dir; the user file is written there as\n"
        "                    <TOKEN>.dat (DIR is created, owner-only, when missing)\n"
        "  --force           replace PATH when it already exists\n"
        "\n"
        "Both files are written owner-only (0600).  Keep them secret: the user file's\n"
        "public key is enough to impersonate the server to this client.\n"
        "Exits 0 on success, 1 on failure, 2 on a usage error.\n",
        PROG_NAME);
}

/* memset that the compiler may not drop. */
static void keygen_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;

    while (n--)
        *v++ = 0;
}

int jproxy_keygen_main(int argc, const char *argv[])
{
    static const char *const names[] = {"--user", "--key-out", "--users-dir"};
    const char *vals[3] = {NULL, NULL, NULL};
    struct jp_client_key ck;
    struct jp_user u;
    char fname[JP_USER_FILE_NAME_LEN + 1];
    char *user_path = NULL;
    bool force = false, exists = false, created = false, user_written = false;
    size_t dlen;
    int ret = 2;
    int i, r, rc;

    jp_client_key_init(&ck);
    jp_user_init(&u);
    fname[0] = '\0';

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            keygen_usage(stdout);
            ret = 0;
            goto out;
        }
        if (strcmp(argv[i], "--json") == 0) {
            ctl_json = true;
            continue;
        }
        if (strcmp(argv[i], "--force") == 0) {
            force = true;
            continue;
        }
        r = 0;
        for (size_t k = 0; k < sizeof(names) / sizeof(names[0]) && r == 0; k++) {
            const char *v = NULL;

            r = ctl_option(argc, argv, &i, names[k], &v);
            if (r > 0) {
                if (vals[k]) {
                    fprintf(stderr, "%s: jproxy-keygen: %s given twice\n", PROG_NAME, names[k]);
                    goto out;
                }
                vals[k] = v;
            }
        }
        if (r < 0) {
            fprintf(stderr, "%s: jproxy-keygen: option '%s' needs a value\n", PROG_NAME, argv[i]);
            keygen_usage(stderr);
            goto out;
        }
        if (r == 0) {
            fprintf(stderr, "%s: jproxy-keygen: unexpected argument '%s'\n", PROG_NAME, argv[i]);
            keygen_usage(stderr);
            goto out;
        }
    }
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
        if (!vals[k] || vals[k][0] == '\0') {
            fprintf(stderr, "%s: jproxy-keygen: %s is required\n", PROG_NAME, names[k]);
            keygen_usage(stderr);
            goto out;
        }
    }

    /* From here on a problem is a failure (1), not a usage error. */
    ret = 1;
    rc = td_fs_exists(vals[1], &exists);
    if (rc != 0) {
        fprintf(stderr, "%s: jproxy-keygen: %s: %s\n", PROG_NAME, vals[1], td_strerror(rc));
        goto out;
    }
    if (exists && !force) {
        fprintf(stderr, "%s: jproxy-keygen: %s already exists (use --force to replace it)\n",
                PROG_NAME, vals[1]);
        goto out;
    }
    rc = td_fs_mkdir_private(vals[2], &created);
    if (rc != 0) {
        fprintf(stderr, "%s: jproxy-keygen: users directory %s: %s\n", PROG_NAME, vals[2],
                rc == TD_EEXIST      ? "exists and is not a directory"
                : rc == TD_ENOTFOUND ? "its parent directory does not exist"
                                     : td_strerror(rc));
        goto out;
    }

    rc = jp_keys_generate(vals[0], &ck, &u);
    if (rc == TD_EINVAL) {
        fprintf(stderr,
                "%s: jproxy-keygen: invalid user name '%s' (1..255 bytes of UTF-8, no NUL, "
                "no characters beyond U+FFFF)\n",
                PROG_NAME, vals[0]);
        goto out;
    }
    if (rc != 0) {
        fprintf(stderr, "%s: jproxy-keygen: key generation failed: %s\n", PROG_NAME,
                td_strerror(rc));
        goto out;
    }

    jp_user_file_name(u.token, fname);
    dlen = strlen(vals[2]);
    user_path = malloc(dlen + 1 + sizeof(fname));
    if (!user_path) {
        fprintf(stderr, "%s: jproxy-keygen: %s\n", PROG_NAME, td_strerror(TD_ENOMEM));
        goto out;
    }
    memcpy(user_path, vals[2], dlen);
    if (dlen > 0 && vals[2][dlen - 1] != '/' && vals[2][dlen - 1] != '\\')
        user_path[dlen++] = '/';
    memcpy(user_path + dlen, fname, sizeof(fname));

    /* A fresh 256-bit token: a clash means something is badly wrong. */
    rc = td_fs_exists(user_path, &exists);
    if (rc == 0 && exists)
        rc = TD_EEXIST;
    if (rc == 0)
        rc = jp_user_write(user_path, &u);
    if (rc != 0) {
        fprintf(stderr, "%s: jproxy-keygen: cannot write the user file %s: %s\n", PROG_NAME,
                user_path, td_strerror(rc));
        goto out;
    }
    user_written = true;
    rc = jp_client_key_write(vals[1], &ck);
    if (rc != 0) {
        fprintf(stderr, "%s: jproxy-keygen: cannot write the key file %s: %s\n", PROG_NAME, vals[1],
                rc == TD_ENOTFOUND ? "its directory does not exist" : td_strerror(rc));
        goto out;
    }
    user_written = false; /* both files stay */

    if (ctl_json) {
        char tok[2 * JP_TOKEN_LEN + 1];
        memcpy(tok, fname, 2 * JP_TOKEN_LEN);
        tok[2 * JP_TOKEN_LEN] = '\0';
        cj_obj(NULL);
        cj_str("user", u.name);
        cj_str("token", tok);
        cj_str("key_file", vals[1]);
        cj_str("user_file", user_path);
        cj_bool("created_users_dir", created);
        cj_obj_end();
        cj_done();
        keygen_wipe(tok, sizeof(tok));
        ret = 0;
        goto out;
    }
    printf("user:      %s\n"
           "token:     %.*s\n"
           "key file:  %s\n"
           "user file: %s\n",
           u.name, 2 * JP_TOKEN_LEN, fname, vals[1], user_path);
    if (created)
        printf("created users directory %s\n", vals[2]);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: jproxy-keygen: cannot write to standard output\n", PROG_NAME);
        goto out;
    }
    ret = 0;
out:
    if (user_written && td_fs_remove(user_path) != 0)
        fprintf(stderr, "%s: jproxy-keygen: could not remove %s\n", PROG_NAME, user_path);
    keygen_wipe(u.salt, sizeof(u.salt));
    keygen_wipe(u.token, sizeof(u.token));
    keygen_wipe(fname, sizeof(fname));
    jp_client_key_free(&ck);
    jp_user_free(&u);
    free(user_path);
    return ret;
}
