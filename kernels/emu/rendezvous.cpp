/*
 * The emulated NCCL's meeting of ranks through files (rendezvous.h).
 */
#include "rendezvous.h"

#include <dirent.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

namespace dat_emu {

namespace {

double now_s()
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

double timeout_from_env()
{
    const char *s = getenv("DAT_EMU_NCCL_TIMEOUT_S");
    double v = s ? atof(s) : 0.0;
    return v > 0 ? v : 120.0;
}

bool exists(const std::string &p)
{
    struct stat st;
    return stat(p.c_str(), &st) == 0;
}

bool write_whole(const std::string &p, const bytes &b, std::string *why)
{
    std::string part = p + ".part";
    FILE *f = fopen(part.c_str(), "wb");
    bool ok = f && (b.empty() || fwrite(b.data(), 1, b.size(), f) == b.size());
    if (f && fclose(f) != 0)
        ok = false;
    if (ok && rename(part.c_str(), p.c_str()) == 0)
        return true;
    *why = "cannot write " + p + ": " + strerror(errno);
    return false;
}

bool read_whole(const std::string &p, bytes *b, std::string *why)
{
    FILE *f = fopen(p.c_str(), "rb");
    bool ok = f && fseek(f, 0, SEEK_END) == 0;
    long size = ok ? ftell(f) : -1;
    ok = ok && size >= 0 && fseek(f, 0, SEEK_SET) == 0;
    if (ok) {
        b->resize((size_t)size);
        ok = size == 0 || fread(b->data(), 1, (size_t)size, f) == (size_t)size;
    }
    if (f)
        fclose(f);
    if (!ok)
        *why = "cannot read " + p + ": " + strerror(errno);
    return ok;
}

void remove_tree(const std::string &dir)
{
    DIR *d = opendir(dir.c_str());
    if (!d)
        return;
    while (struct dirent *e = readdir(d))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlink((dir + "/" + e->d_name).c_str()); /* a peer may be at it too */
    closedir(d);
    rmdir(dir.c_str());
}

} // namespace

rendezvous::rendezvous(const void *id, size_t id_bytes, int nranks, int rank)
    : nranks_(nranks), rank_(rank), timeout_s_(timeout_from_env())
{
    if (nranks_ == 1)
        return;
    const char *tmp = getenv("TMPDIR");
    char name[64] = "dat-emu-nccl-";
    const unsigned char *u = (const unsigned char *)id;
    for (size_t i = 0; i < 16 && i < id_bytes; ++i)
        snprintf(name + strlen(name), sizeof name - strlen(name), "%02x", u[i]);
    dir_ = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + name;
    if (mkdir(dir_.c_str(), 0700) != 0 && errno != EEXIST)
        broken_ = true; /* the first exchange says why */
}

rendezvous::~rendezvous() { leave(); }

std::string rendezvous::path(uint64_t k, int r) const
{
    return dir_ + "/" + std::to_string(k) + "." + std::to_string(r);
}

/* Spins briefly, then sleeps: most waits are for a peer a few microseconds
 * behind, some for one that computes for seconds. */
bool rendezvous::wait_for(const std::string &p, std::string *why) const
{
    double start = now_s();
    for (long tries = 0; !exists(p); ++tries) {
        if (tries < 200) {
            sched_yield();
            continue;
        }
        if (now_s() - start > timeout_s_) {
            char msg[160];
            snprintf(msg, sizeof msg, "rank %d of %d: no peer's part of exchange %llu after "
                     "%g s (DAT_EMU_NCCL_TIMEOUT_S)", rank_, nranks_,
                     (unsigned long long)next_, timeout_s_);
            *why = msg;
            return false;
        }
        struct timespec ts = {0, tries < 2000 ? 50000L : 1000000L};
        nanosleep(&ts, nullptr);
    }
    return true;
}

bool rendezvous::exchange(const bytes &mine, std::vector<bytes> *all, std::string *why)
{
    all->assign((size_t)nranks_, bytes());
    if (nranks_ == 1) {
        (*all)[0] = mine;
        return true;
    }
    if (broken_) {
        *why = "an earlier exchange of this communicator failed (or its directory " + dir_ +
               " could not be made)";
        return false;
    }
    uint64_t k = next_;
    bool ok = write_whole(path(k, rank_), mine, why);
    for (int j = 0; ok && j < nranks_; ++j)
        ok = j == rank_ ? ((*all)[j] = mine, true)
                        : wait_for(path(k, j), why) && read_whole(path(k, j), &(*all)[j], why);
    if (!ok) {
        broken_ = true;
        return false;
    }
    if (k > 0)
        unlink(path(k - 1, rank_).c_str());
    next_ = k + 1;
    return true;
}

/* The last to leave, having seen everyone's bye, removes the directory: no
 * one reads any file then. */
void rendezvous::leave()
{
    if (nranks_ == 1 || dir_.empty())
        return;
    std::string why;
    if (!write_whole(dir_ + "/bye." + std::to_string(rank_), bytes(), &why))
        return;
    for (int j = 0; j < nranks_; ++j)
        if (!exists(dir_ + "/bye." + std::to_string(j)))
            return;
    remove_tree(dir_);
}

} // namespace dat_emu
