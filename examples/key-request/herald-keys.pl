#!/usr/bin/perl
# Herald key request source: answers "id <value>" / "ip <value>" from a MariaDB/MySQL table
#   agent (id VARCHAR(36), name VARCHAR(128), ip VARCHAR(43), agent_key VARCHAR(128))
# Program method: herald-keys.pl [--dsn DSN] [--user USER] id|ip VALUE   (one JSON answer on stdout)
# Socket method:  herald-keys.pl [--dsn DSN] [--user USER] --listen /run/herald/keys.sock
#                 (reads "id:VALUE" or "ip:VALUE" per connection, answers JSON, closes)
# The value is always passed to the database as a bound parameter, never pasted into SQL.
use strict;
use warnings;
use DBI;
use JSON::PP;
use IO::Socket::UNIX;

my %opt = (dsn => 'DBI:MariaDB:database=herald_keys', user => 'root');
while (@ARGV && $ARGV[0] =~ /^--(dsn|user|password-file|listen)$/) {
    my $name = substr(shift @ARGV, 2);
    $opt{$name} = shift @ARGV;
}
my $password = '';
if ($opt{'password-file'}) {
    open(my $fh, '<', $opt{'password-file'}) or die "cannot read the password file\n";
    chomp($password = <$fh> // '');
}

my %QUERY = (
    id => 'SELECT id, name, ip, agent_key FROM agent WHERE id = ?',
    ip => 'SELECT id, name, ip, agent_key FROM agent WHERE ip = ?',
);

sub lookup {
    my ($kind, $value) = @_;
    return { error => 3, message => 'Bad arguments given' } unless defined $value && $QUERY{$kind // ''};
    my $dbh = eval { DBI->connect($opt{dsn}, $opt{user}, $password, { RaiseError => 1, PrintError => 0 }) };
    return { error => 2, message => 'Could not connect to the database' } unless $dbh;
    my $row = eval { $dbh->selectrow_hashref($QUERY{$kind}, undef, $value) };
    my $failed = $@;
    $dbh->disconnect;
    return { error => 2, message => 'Query failed' } if $failed;
    return { error => 4, message => 'No agent key found' } unless $row;
    return { error => 0, data => { id => $row->{id}, name => $row->{name}, ip => $row->{ip}, key => $row->{agent_key} } };
}

my $json = JSON::PP->new->canonical;

if (my $path = $opt{listen}) {
    unlink $path;
    my $server = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Local => $path, Listen => 16)
        or die "cannot listen on $path: $!\n";
    $SIG{TERM} = sub { unlink $path; exit 0 };
    while (my $client = $server->accept) {
        local $/;                      # Herald half-closes after its request: read to EOF
        my $request = <$client> // '';
        if ($request =~ /^(id|ip):(.+)\z/s) {
            print {$client} $json->encode(lookup($1, $2));
        }                              # an empty exchange is the start-up health check
        close $client;
    }
    exit 0;
}

print $json->encode(@ARGV == 2 ? lookup(@ARGV) : { error => 1, message => 'Too few arguments' }), "\n";
