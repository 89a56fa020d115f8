/*
 * A main() for the fuzz harnesses where libFuzzer is not linked (gcc builds):
 * runs LLVMFuzzerTestOneInput once on every file of the folders or files
 * given, so the corpus stays a regression test. Exit 0 unless a file cannot
 * be read (a crash is a crash).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
    size_t got = fread(b, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) {
        fprintf(stderr, "%s: short read\n", path);
        free(b);
        return 1;
    }
    LLVMFuzzerTestOneInput(b, got);
    free(b);
    return 0;
}

int main(int argc, char **argv)
{
    int bad = 0, files = 0;
    for (int a = 1; a < argc; ++a) {
        struct stat st;
        if (stat(argv[a], &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[a]);
            struct dirent *de;
            while (d && (de = readdir(d)) != NULL) {
                if (de->d_name[0] == '.')
                    continue;
                char path[4096];
                snprintf(path, sizeof path, "%s/%s", argv[a], de->d_name);
                bad |= run_file(path);
                ++files;
            }
            if (d)
                closedir(d);
        } else {
            bad |= run_file(argv[a]);
            ++files;
        }
    }
    printf("replayed %d inputs\n", files);
    return bad || files == 0;
}
