"""
A throwaway certificate authority and server certificates for the TLS
tests, made with C{cryptography}.
"""

import datetime
import ipaddress
import os
import shutil
import tempfile
import weakref

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )


class ThrowawayCA:
    """
    A certificate authority that exists for one test run.
    """

    def __init__(self, name="twisted-chat test CA", directory=None):
        """
        @param directory: where to write the PEM files: a directory that
            the caller removes (it is made if missing).  By default a
            temporary one, removed with this object (at the latest when the
            process exits).
        """
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False,
                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                    key_cert_sign=True, crl_sign=True, encipher_only=False,
                    decipher_only=False),
                critical=True)
            .sign(self.key, hashes.SHA256())
        )
        if directory is None:
            directory = tempfile.mkdtemp(prefix="twisted-chat-certs-")
            weakref.finalize(self, shutil.rmtree, directory, True)
        else:
            os.makedirs(directory, exist_ok=True)
        self.directory = directory

    def write(self, filename, data):
        path = os.path.join(self.directory, filename)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def ca_file(self):
        """
        The CA's certificate as a PEM file; its path.
        """
        return self.write("ca.pem", self.certificate.public_bytes(serialization.Encoding.PEM))

    def server_files(self, hostname="localhost"):
        """
        A key and a certificate for C{hostname} (and 127.0.0.1), signed by
        this CA, as PEM files: (key path, certificate path).
        """
        key, certificate = self.server_certificate(hostname)
        return (
            self.write(hostname + ".key", _pem(key)),
            self.write(hostname + ".pem", certificate.public_bytes(serialization.Encoding.PEM)),
        )

    def server_options(self, hostname="localhost"):
        """
        Twisted TLS server options with a key and a certificate for
        C{hostname} from this CA, for an L{SSL4ServerEndpoint}.  They hold
        C{cryptography} objects, which pyOpenSSL takes without the
        DeprecationWarning its own X509 and PKey objects bring (as the
        C{ssl:} endpoint string makes them).
        """
        from twisted.internet.ssl import CertificateOptions

        key, certificate = self.server_certificate(hostname)
        return CertificateOptions(privateKey=key, certificate=certificate)

    def server_certificate(self, hostname="localhost"):
        """
        A key and a certificate for C{hostname} (and 127.0.0.1), signed by
        this CA, as C{cryptography} objects.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(hostname))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName(hostname), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return key, certificate
