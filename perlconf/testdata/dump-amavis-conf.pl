#!/usr/bin/perl -T
# dump-amavis-conf.pl: the oracle of perlconf's differential test.
#
# Usage: perl -T dump-amavis-conf.pl [--after-defaults] FILE...
#
# Loads the configuration FILEs, in the order given, through amavis's own
# Amavis::Conf (the Debian amavisd-new package's modules), as amavisd does
# before it starts its daemon, and prints every configuration variable that
# Amavis::Conf declares as one canonical JSON document on stdout:
#
#   {"host": {...}, "variables": {"$name": ..., "@name": [...], "%name": {...}}}
#
# Values: strings as JSON strings, numbers (values Perl holds only as a
# number) as JSON numbers, undef as null, array and hash references as arrays
# and objects, scalar references as the value they point to, regexps as
# {"re": pattern, "flags": flags}, code references as {"code": true}, objects
# as {"object": class, "value": ...}, a reference met again inside itself as
# {"cycle": true}; the device and inode numbers dkim_key records for a key
# file are null. Keys are sorted. Strings that are valid UTF-8 are shown as
# their characters, others as their bytes read as Latin-1.
#
# "host" records what the configuration may have read from this machine
# (the node name amavis defaults $myhostname to, /etc/mailname,
# `hostname --fqdn`), so a comparison elsewhere can tell them apart.
#
# With --after-defaults the dump is taken after amavis's
# supply_after_defaults, as the daemon sees it; without, it is what the files
# themselves produce.
#
# No daemon is started, no privileges are needed or dropped, nothing listens
# and nothing is written. The check that configuration files are owned by
# root is switched off (%i_know_what_i_am_doing{no_conf_file_writable_check}),
# because test data is owned by whoever checked it out.
#
# Exit status: 0 after a dump; 1 when amavis refuses a file, with amavis's
# message on stderr and no dump.

use strict;
use warnings;

my ($after_defaults, @files);

BEGIN {
  # Amavis::Conf records $0 as $myprogram_name while it loads; give it the
  # name the Debian daemon runs under.
  $0 = '/usr/sbin/amavisd';
  # The taint mode amavisd runs in (perl -T) leaves a PATH from the
  # environment tainted; the configuration files set their own (Debian's
  # 01-debian does), as they would under amavisd.
  delete @ENV{qw(IFS CDPATH ENV BASH_ENV)};
  for my $arg (@ARGV) {
    if ($arg eq '--after-defaults') { $after_defaults = 1; next }
    # The file names come from the caller, as amavisd's -c does.
    $arg =~ /\A(.+)\z/s or die "empty file name\n";
    push @files, $1;
  }
  @files or die "usage: perl -T dump-amavis-conf.pl [--after-defaults] FILE...\n";
}

# Amavis::Conf calls Exporter::export_tags as a list operator at compile time,
# so Exporter must already be loaded, as it is in amavisd.
use Exporter ();
use B ();
use JSON::PP ();
use Scalar::Util qw(blessed reftype refaddr);
use re qw(regexp_pattern is_regexp);
use Amavis::Conf ();
use Amavis::Util ();
use Amavis::Lookup::RE ();
use Amavis::Lookup::IP ();
use Amavis::Lookup::Label ();

# The configuration is run in the package its files are evaluated in.
package Amavis::Conf;

# What amavisd does between loading its modules and reading the files:
# the built-in file-type map becomes a lookup object (a configuration may
# change or extend it).
$Amavis::Conf::map_full_type_to_short_type_re =
  Amavis::Lookup::RE->new(@$Amavis::Conf::map_full_type_to_short_type_re);
$Amavis::Conf::i_know_what_i_am_doing{no_conf_file_writable_check} = 1;

my %host = (
  uname_node => (POSIX::uname())[1],
  mailname   => do {
    my $s;
    if (open(my $fh, '<', '/etc/mailname')) { $s = <$fh>; close $fh;
      chomp $s if defined $s }
    $s;
  },
  hostname_fqdn => do {
    local $ENV{PATH} = '/bin:/usr/bin';
    my $s = `hostname --fqdn 2>/dev/null`;
    chomp $s if defined $s; $s;
  },
);

my $ok = eval { Amavis::Conf::include_config_files(@files); 1 };
if (!$ok) {
  my $err = $@; $err = "unknown error\n" if $err eq '';
  print STDERR $err;
  exit 1;
}
# The switch is ours, not the files': it is not part of the dump (a file that
# sets this key itself loses it here, which none of the collected sets does).
delete $Amavis::Conf::i_know_what_i_am_doing{no_conf_file_writable_check};
if ($after_defaults) {
  my $ok2 = eval { Amavis::Conf::supply_after_defaults(); 1 };
  if (!$ok2) { print STDERR $@; exit 1 }
}

package main;

# Every variable Amavis::Conf declares for configuration files: the variables
# of its export tags, plus its old names kept as aliases.
my %names;
for my $tag (values %Amavis::Conf::EXPORT_TAGS) {
  $names{$_} = 1 for grep { /\A[\$\@%]\w+\z/ } @$tag;
}
$names{$_} = 1 for qw(%final_destiny_by_ccat %defang_by_ccat
                      $sql_partition_tag $DO_SYSLOG $LOGFILE);

my %vars;
{
  no strict 'refs';
  for my $n (sort keys %names) {
    my ($sigil, $bare) = ($n =~ /\A(.)(.*)\z/s);
    my $full = "Amavis::Conf::$bare";
    $vars{$n} = $sigil eq '$' ? value(${$full}, {})
              : $sigil eq '@' ? [ map { value($_, {}) } @{$full} ]
              : { map { (text($_) => value(${$full}{$_}, {})) }
                  keys %{$full} };
  }
}

# dkim_key keeps each key file's device and inode number next to its text
# (to notice one file named twice); they differ between checkouts and mean
# nothing to the configuration, so the dump shows them as null.
for my $entry (@{$vars{'@dkim_signing_keys_storage'}}) {
  @$entry[1, 2] = (undef, undef) if ref $entry eq 'ARRAY';
}

my %out = (
  host => { map { ($_ => defined $host{$_} ? text($host{$_}) : undef) }
            keys %host },
  variables => \%vars,
);
binmode STDOUT;
print JSON::PP->new->utf8->canonical->pretty->encode(\%out);
exit 0;

# text: a fresh JSON string for a Perl string, decoded from UTF-8 when it is
# valid UTF-8.
sub text {
  my ($s) = @_;
  my $t = "$s";
  if (!utf8::is_utf8($t)) { my $c = $t; $t = $c if utf8::decode($c) }
  return $t;
}

# value: the JSON form of one Perl value; $seen holds the references on the
# path from the variable down to here.
sub value {
  my ($v, $seen) = @_;
  return undef if !defined $v;
  if (!ref $v) {
    my $flags = B::svref_2object(\$v)->FLAGS;
    if (($flags & (B::SVf_IOK() | B::SVf_NOK())) && !($flags & B::SVf_POK())) {
      my $s = "$v";
      # Infinity and NaN have no JSON number.
      return $s =~ /\A-?(?:\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\z/ ? 0 + $s : $s;
    }
    return text($v);
  }
  if (is_regexp($v)) {
    my ($pat, $flags) = regexp_pattern($v);
    return { re => text($pat), flags => text($flags) };
  }
  my $addr = refaddr($v);
  return { cycle => JSON::PP::true() } if $seen->{$addr};
  local $seen->{$addr} = 1;
  my $type = reftype($v);
  my $plain;
  if ($type eq 'CODE') { $plain = { code => JSON::PP::true() } }
  elsif ($type eq 'ARRAY') { $plain = [ map { value($_, $seen) } @$v ] }
  elsif ($type eq 'HASH') {
    $plain = { map { (text($_) => value($v->{$_}, $seen)) } keys %$v };
  }
  elsif ($type eq 'SCALAR' || $type eq 'REF' || $type eq 'VSTRING'
         || $type eq 'LVALUE') { $plain = value($$v, $seen) }
  elsif ($type eq 'GLOB') { $plain = { glob => text(*{$v}{NAME}) } }
  else { $plain = { unsupported => $type } }
  my $class = blessed($v);
  return defined $class ? { object => $class, value => $plain } : $plain;
}
