set terminal pngcairo size 1200,520 font "DejaVu Sans,10"
set output 'bench/results/chart.png'
set datafile missing "NaN"
set style fill solid 0.85 border -1
set boxwidth 0.6
set grid ytics
set xtics rotate by -25 nomirror
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set multiplot layout 1,2 title "tunneld benchmark (127.0.0.1, one run; ratios against shadowsocks-libev)"
set title "bulk: one 256 MiB download through SOCKS5, best of 3 (MB/s)\n (direct, the loopback limit: 1587 MB/s)"
plot 'bench/results/chart.dat' using 1:3:xtic(2) with boxes lc rgb "#4878a8" notitle, \
     '' using 1:3:4 with labels offset 0,0.8 notitle
set title "rps: new connection + SOCKS5 + GET /1k, 32 workers (requests/s)"
plot 'bench/results/chart.dat' using 1:5:xtic(2) with boxes lc rgb "#e07b39" notitle, \
     '' using 1:5:6 with labels offset 0,0.8 notitle
unset multiplot
