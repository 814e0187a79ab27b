# Homebrew formula for tokend.
#
# At a release: point url/sha256 at the published sdist (python -m build
# --sdist) and refresh the Python resources with
#   brew update-python-resources tokend
class Tokend < Formula
  include Language::Python::Virtualenv

  desc "Per-user daemon that caches and refreshes cloud credentials"
  homepage "https://github.com/tokend/tokend"
  url "https://github.com/tokend/tokend/releases/download/v0.1.0/tokend-0.1.0.tar.gz"
  sha256 "0000000000000000000000000000000000000000000000000000000000000000"
  license "Apache-2.0"
  head "https://github.com/tokend/tokend.git", branch: "main"

  depends_on "python@3.13"

  on_linux do
    depends_on "cryptography" # keyring's Secret Service backend (SecretStorage)

    resource "jeepney" do
      url "https://files.pythonhosted.org/packages/7b/6f/357efd7602486741aa73ffc0617fb310a29b588ed0fd69c2399acbb85b0c/jeepney-0.9.0.tar.gz"
      sha256 "cf0e9e845622b81e4a28df94c40345400256ec608d0e55bb8a3feaa9163f5732"
    end

    resource "secretstorage" do
      url "https://files.pythonhosted.org/packages/1c/03/e834bcd866f2f8a49a85eaff47340affa3bfa391ee9912a952a1faa68c7b/secretstorage-3.5.0.tar.gz"
      sha256 "f04b8e4689cbce351744d5537bf6b1329c6fc68f91fa666f60a380edddcd11be"
    end
  end

  resource "click" do
    url "https://files.pythonhosted.org/packages/45/37/edbf1b0707709013c0cf2e8317e03d97ed29bf4cac709fe328904ae92a38/click-8.5.1.tar.gz"
    sha256 "9bbfada76703fd1d784b83eea012e3e8c6a001a876543ef104fa56aaaeb072b4"
  end

  resource "filelock" do
    url "https://files.pythonhosted.org/packages/52/aa/8ccff8da9a27e089727fcffd3c5b61708383217e47eb1e1b8af37b1dd166/filelock-4.2.12.tar.gz"
    sha256 "7e7da24d3ac39268b0f156e56870001de44886318f092f9d851e692f7114d6dd"
  end

  resource "jaraco.classes" do
    url "https://files.pythonhosted.org/packages/06/c0/ed4a27bc5571b99e3cff68f8a9fa5b56ff7df1c2251cc715a652ddd26402/jaraco.classes-3.4.0.tar.gz"
    sha256 "47a024b51d0239c0dd8c8540c6c7f484be3b8fcf0b2d85c13825780d3b3f3acd"
  end

  resource "jaraco.context" do
    url "https://files.pythonhosted.org/packages/af/50/4763cd07e722bb6285316d390a164bc7e479db9d90daa769f22578f698b4/jaraco_context-6.1.2.tar.gz"
    sha256 "f1a6c9d391e661cc5b8d39861ff077a7dc24dc23833ccee564b234b81c82dfe3"
  end

  resource "jaraco.functools" do
    url "https://files.pythonhosted.org/packages/6c/1f/c23395957d41ccf27c4e535c3d334c4051e5395b3752057ba4cbaec35c56/jaraco_functools-4.6.0.tar.gz"
    sha256 "880c577ec9720b3a052d5bc611fb9f2269b3d87902ef42440df443b88e443280"
  end

  resource "keyring" do
    url "https://files.pythonhosted.org/packages/43/4b/674af6ef2f97d56f0ab5153bf0bfa28ccb6c3ed4d1babf4305449668807b/keyring-25.7.0.tar.gz"
    sha256 "fe01bd85eb3f8fb3dd0405defdeac9a5b4f6f0439edbb3149577f244a2e8245b"
  end

  resource "more-itertools" do
    url "https://files.pythonhosted.org/packages/52/b8/c63995bebbb9ac9c059350e0fb8c82c2420c85aeca7d34e40aecf3df9281/more_itertools-11.2.1.tar.gz"
    sha256 "cbf08fd0af284dc69718b9b76a8e6203df624d70209ea511e4219d350c856f63"
  end

  resource "tomlkit" do
    url "https://files.pythonhosted.org/packages/08/72/fc01563df95c189a9f65850096bdc205bc2fe37da6c740cd64afaf18d07e/tomlkit-0.15.2.tar.gz"
    sha256 "83e32755ba1d20d9340bd069ee97e9f6232ba2346b63ffcba425de01f7e327a6"
  end

  def install
    # Links bin/tokend and bin/tokend-print (the wheel's script) into the prefix.
    virtualenv_install_with_resources
    generate_completions_from_executable(bin/"tokend", shell_parameter_format: :click)
    system libexec/"bin/python", "packaging/generate.py", buildpath/"generated"
    man1.install "generated/tokend.1"
    man1.install_symlink "tokend.1" => "tokend-print.1"
  end

  def caveats
    <<~EOS
      To start the daemon at login (a launchd agent):
        brew services start tokend
      Use this or `tokend service install`, not both: each installs an agent.
      Without either, the first `tokend-print` starts a daemon on demand.
    EOS
  end

  service do
    run [opt_bin/"tokend", "serve"]
    # Restart after a crash, not after `tokend stop`.
    keep_alive successful_exit: false
    environment_variables PATH: std_service_path_env
    log_path var/"log/tokend.log"
    error_log_path var/"log/tokend.log"
  end

  test do
    assert_match "tokend, version #{version}", shell_output("#{bin}/tokend --version")
    ENV["TOKEND_NO_DAEMON"] = "1"
    ENV["XDG_RUNTIME_DIR"] = testpath/"run"
    ENV["XDG_CONFIG_HOME"] = testpath/"config"
    (testpath/"run").mkpath
    chmod 0700, testpath/"run"
    assert_match(/^demo-/, shell_output("#{bin}/tokend-print demo"))
  end
end
