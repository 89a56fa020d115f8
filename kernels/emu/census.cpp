/*
 * The emulator's launch census: with DAT_EMU_LAUNCHES set when the process
 * starts, every piece of work that runs on a stream (a kernel grid, a cuDNN or
 * cuBLAS call, a copy, a memset, an NCCL call, a graph launch and each node of
 * its replays) is counted under where it comes from, and the table is written
 * at exit: to stderr for DAT_EMU_LAUNCHES=1, else to the file it names.
 *
 * Why: on a GPU each launch costs a few microseconds of the host and about one
 * of the device between dependent kernels, even from a graph, so a step's
 * launch count is a cost that is exact here, while timing needs the GPU.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "emu.h"

namespace {

/* The template arguments of a " [with A = x; B = y]" clause: those of
 * template parameters (capitalized, or a generic lambda's auto:N), not the
 * typedefs GCC also lists (size_t = long unsigned int). */
std::string template_args(const std::string &with)
{
    std::string out, item;
    for (size_t i = 0; i <= with.size(); ++i) {
        if (i < with.size() && with[i] != ';') {
            item += with[i];
            continue;
        }
        size_t eq = item.find(" = ");
        std::string lhs = item.substr(0, eq == std::string::npos ? 0 : eq);
        lhs = lhs.substr(lhs.rfind(' ') == std::string::npos ? 0 : lhs.rfind(' ') + 1);
        if (!lhs.empty() && (isupper((unsigned char)lhs[0]) || lhs.compare(0, 5, "auto:") == 0))
            out += (out.empty() ? "" : ", ") + item.substr(item.find_first_not_of(' '));
        item.clear();
    }
    return out;
}

/* "f [A = x]" of "ret f(args) [with A = x; size_t = ...]"; a lambda's
 * enclosing function keeps its name ("f(args)::<lambda(auto:1)>" gives f). */
std::string short_func(const char *pretty)
{
    std::string s(pretty ? pretty : "");
    std::string name = s.substr(0, s.find('('));
    size_t space = name.rfind(' ');
    if (space != std::string::npos)
        name = name.substr(space + 1);
    size_t with = s.rfind(" [with ");
    std::string args =
        with == std::string::npos ? "" : template_args(s.substr(with + 7, s.size() - with - 8));
    return args.empty() ? name : name + " [" + args + "]";
}

std::string label_of(const dat_emu::site &from)
{
    std::string file(from.file ? from.file : "?");
    size_t slash = file.rfind('/');
    if (slash != std::string::npos)
        file = file.substr(slash + 1);
    std::string label = file;
    if (from.line > 0)
        label += ":" + std::to_string(from.line);
    label += std::string(" ") + (from.what ? from.what : "?");
    std::string func = short_func(from.func);
    if (!func.empty())
        label += " in " + func;
    return label;
}

struct census {
    std::mutex lock;
    std::map<std::string, unsigned long long> counts;
    const char *dest = getenv("DAT_EMU_LAUNCHES");

    bool on() const { return dest && *dest; }

    void count(const dat_emu::site &from)
    {
        std::lock_guard<std::mutex> g(lock);
        ++counts[label_of(from)];
    }

    void write(FILE *f)
    {
        std::vector<std::pair<unsigned long long, std::string>> rows;
        unsigned long long total = 0;
        for (const auto &c : counts) {
            rows.emplace_back(c.second, c.first);
            total += c.second;
        }
        std::sort(rows.begin(), rows.end(), [](const auto &a, const auto &b) {
            return a.first != b.first ? a.first > b.first : a.second < b.second;
        });
        fprintf(f, "CUDA emulation launch census (DAT_EMU_LAUNCHES): %llu in all\n", total);
        for (const auto &r : rows)
            fprintf(f, "%10llu  %s\n", r.first, r.second.c_str());
    }

    ~census()
    {
        if (!on())
            return;
        FILE *f = strcmp(dest, "1") == 0 ? stderr : fopen(dest, "a");
        if (!f) {
            fprintf(stderr, "CUDA emulation: cannot write the launch census to %s\n", dest);
            return;
        }
        write(f);
        if (f != stderr)
            fclose(f);
    }
};

census the_census;

} // namespace

namespace dat_emu {

std::function<void()> counted(std::function<void()> op, const site &from)
{
    if (!the_census.on())
        return op;
    return [op = std::move(op), from]() {
        the_census.count(from);
        op();
    };
}

} // namespace dat_emu
